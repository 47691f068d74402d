// GET|HEAD|DELETE on every path that is not a fixed route: fids (with optional extension and
// variant suffix or query) and legacy paths. Also the two internal routes peers use.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { decodeFid, looksLikeFid } from '../src/wire/file-id.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { answer, type Answer } from './cached-response.ts';
import { addLegacyKey } from './edge-purge-keys.ts';
import type { FileStore } from './file-store.ts';
import type { LegacyResolver } from './legacy-resolver.ts';
import type { OriginCore, Source } from './origin-core.ts';
import { PEER_ROUTES, type PeerRing } from './peer-ring.ts';
import { callerOf, type AuthConfig } from './upload-auth.ts';
import { requestTarget } from './hit-path.ts';
import { verifySignature } from './url-signature.ts';
import { clientKey, type RateLimiter } from './rate-limit.ts';
import type { VariantBudget } from './variant-budget.ts';
import type { UploadQuota } from './flood-control.ts';
import { MAX_OUTPUT_SIDE, MAX_URL_LENGTH, parseTarget, resolveVariant, variantFromKey, type ParsedTarget, type ResolveOptions, type VariantSpec } from './variant-url.ts';

export interface ReadDeps {
  core: OriginCore;
  store: FileStore;
  resolver: LegacyResolver;
  resolve: Omit<ResolveOptions, 'accept'>;
  signingKeys: readonly string[];
  auth: AuthConfig;
  peers: () => PeerRing | undefined;
  /** forgets a file in this origin's caches — in every worker of a pool — before resolving */
  purge(fid: string): Promise<void>;
  /** undoes purge()'s tombstone when the delete it guarded did not happen */
  revive(fid: string): void;
  metrics: Metrics;
  log: Logger;
  /** variant misses per client address (--variant-rate, --variant-burst) */
  variantLimiter?: RateLimiter;
  /** --max-variants-per-file */
  budget?: VariantBudget;
  /** --quota-bytes: a delete gives the owner its bytes back */
  quota?: UploadQuota;
  /** --purge-edges/--purge-webhook: notes each URL a file was served by (origin/served-urls.ts) */
  served?: (fid: string, url: string, legacyPath: string | undefined) => void;
  /** --purge-edges/--purge-webhook: called once a delete is acknowledged (origin/edge-purge.ts) */
  deleted?: (fid: string) => void | Promise<void>;
}

/** A variant named by a preset and nothing else: the operator chose it, so it is never capped. */
function presetOnly(spec: VariantSpec): boolean {
  return spec.preset !== undefined && Object.entries(spec).every(([k, v]) => k === 'preset' || v === undefined);
}

export function send(reply: FastifyReply, a: Answer, head: boolean): FastifyReply {
  reply.code(a.status).headers(a.headers);
  if (a.body === undefined) return reply.send();
  if (head) {
    reply.header('content-length', String(a.body.length));
    return reply.send();
  }
  return reply.send(a.body);
}

export function registerReads(app: FastifyInstance, d: ReadDeps): void {
  const { core } = d;

  app.addHook('onRequest', async (req) => {
    // Checked before routing so an absurd URL gets a clear 400, not a route miss.
    if (req.url.length > MAX_URL_LENGTH) throw new UgcfsError('UGCFS_ERR_BAD_PATH', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  });

  app.addHook('onSend', async (_req, reply, payload) => {
    // Short caching suits client errors (junk URLs stay at the edge); a server-side failure
    // must not be replayed by CDNs once the origin has recovered.
    if (reply.statusCode >= 500) reply.header('cache-control', 'no-store');
    return payload;
  });

  async function sourceOf(t: ParsedTarget): Promise<Source> {
    if (t.kind === 'fid') {
      decodeFid(t.id);
      return { kind: 'fid', fid: t.id };
    }
    const fid = await d.resolver.lookup(t.id);
    d.metrics.legacyLookups.inc({ result: fid ? 'hit' : 'miss' });
    if (fid) {
      if (!looksLikeFid(fid)) throw new UgcfsError('UGCFS_ERR_UPSTREAM', 'the legacy table maps this path to a malformed file id');
      return { kind: 'fid', fid };
    }
    const fetchThrough = d.resolver.fetchThrough?.bind(d.resolver);
    if (!fetchThrough) throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND', 'the legacy path is not mapped');
    const path = t.id;
    return { kind: 'bytes', id: path, load: () => fetchThrough(path) };
  }

  async function read(req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const t = parseTarget(requestTarget(req));
    let served;
    let kind: 'original' | 'variant';
    let src: Source;
    if (t.spec === undefined) {
      src = await sourceOf(t);
      served = await core.original(src);
      kind = 'original';
    } else {
      if (d.signingKeys.length > 0) verifySignature(d.signingKeys, t.signed, t.sig, t.exp);
      const v = resolveVariant(t.spec, { ...d.resolve, accept: req.headers.accept });
      src = await sourceOf(t);
      const capped = !presetOnly(t.spec);
      const budgetId = src.kind === 'fid' ? src.fid : `L:${src.id}`;
      // Only misses are refused; the check runs inside the core once it knows it is one.
      const admit = () => {
        if (capped) d.budget?.check(budgetId, v.key);
        d.variantLimiter?.take(clientKey(req.socket.remoteAddress));
        if (capped) d.budget?.record(budgetId, v.key);
      };
      served = await core.variant(src, v, { forward: true, admit });
      kind = 'variant';
    }
    const a = answer(served.entry, req.headers, served.xCache);
    if (t.kind === 'legacy') addLegacyKey(a.headers, t.id);
    if (d.served && src.kind === 'fid') d.served(src.fid, requestTarget(req), t.kind === 'legacy' ? t.id : undefined);
    if (a.body && req.method !== 'HEAD') d.metrics.bytesServed.inc({ kind }, a.body.length);
    return send(reply, a, req.method === 'HEAD');
  }

  app.route({ method: ['GET', 'HEAD'], url: '/*', exposeHeadRoute: false, config: { auth: 'public' }, handler: read });

  // 'owner': an upload token, the admin token, or a loopback client when no tokens are set (callerOf)
  app.delete('/*', { config: { auth: 'owner' } }, async (req, reply) => {
    const t = parseTarget(requestTarget(req));
    if (t.kind !== 'fid') throw new UgcfsError('UGCFS_ERR_METHOD_NOT_ALLOWED', 'files are deleted by file id, not by legacy path');
    if (t.spec !== undefined) throw new UgcfsError('UGCFS_ERR_BAD_PARAM', 'delete the file, not a variant: variants go with it');
    decodeFid(t.id);
    const caller = callerOf(req, d.auth);
    if (core.isDead(t.id)) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
    const info = await d.store.head(t.id);
    if (!caller.admin && info.owner !== caller.owner) throw new UgcfsError('UGCFS_ERR_FORBIDDEN', 'only the uploader or the admin may delete this file');
    // Tombstone and purge first, so nothing local serves it from here on, then delete in
    // storage, then make every peer forget it — all before answering.
    await d.purge(t.id);
    try {
      await d.store.delete(t.id);
    } catch (err) {
      d.revive(t.id);
      throw err;
    }
    await d.peers()?.broadcastPurge(t.id);
    // resolves once the purge is journaled (origin/purge-journal.ts): the 204 promises it
    await d.deleted?.(t.id);
    d.budget?.forget(t.id);
    await d.quota?.release(info.owner, info.size);
    req.log.info({ fid: t.id, by: caller.admin ? 'admin' : caller.owner }, 'deleted');
    return reply.code(204).header('cache-control', 'no-store').send();
  });

  // Peer origins call these with the origins' credential (or the cluster secret): auth kind 'file'.
  app.get(PEER_ROUTES.variant, { config: { auth: 'file' } }, async (req, reply) => {
    const fid = (req.params as { fid: string }).fid;
    decodeFid(fid);
    const q = req.query as { v?: string; n?: string };
    const v = variantFromKey(String(q.v ?? ''), q.n === '1');
    if (v.w * v.h > d.resolve.maxOutputPixels || v.w > MAX_OUTPUT_SIDE) throw new UgcfsError('UGCFS_ERR_OUTPUT_TOO_LARGE');
    const served = await core.variant({ kind: 'fid', fid }, v, { forward: false });
    const e = served.entry;
    return reply.code(200).headers({ 'content-type': e.mime, etag: e.etag, 'last-modified': e.headers['last-modified']!, 'x-cache': served.xCache }).send(e.body);
  });

  app.post(PEER_ROUTES.purge, { config: { auth: 'file' } }, async (req, reply) => {
    const fid = (req.body as { fid?: unknown } | undefined)?.fid;
    if (typeof fid !== 'string' || !looksLikeFid(fid)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'purge needs {"fid": "<file id>"}');
    await d.purge(fid);
    return reply.code(204).send();
  });
}
