// Primary-side replication: the primary appends locally while it forwards the same bytes
// (same upload time, mime and owner) to every peer replica in parallel. A write is
// acknowledged only when all of them have it; otherwise every copy that did land is
// tombstoned, so a failed write never stays visible anywhere.
import { UgcfsError, isUgcfsError } from '../src/errors.ts';
import { callRaw, expectOk, putBytes, sendBytes } from '../src/http-client.ts';
import { BATCH_CONTENT_TYPE, batchItemError, encodeNeedleBatch, parseBatchResults, type BatchItemResult } from '../src/needle-batch.ts';
import { SECRET_HEADER } from '../src/secret.ts';
import type { Logger } from '../src/log.ts';
import type { Metrics } from '../src/metrics.ts';
import { DS_ROUTES, HEADERS, type WriteResult } from '../src/protocol.ts';
import type { BlockStore, PutResult } from './block-store.ts';
import type { NeedleMeta } from './needle.ts';

export interface ReplicationContext {
  store: BlockStore;
  secret: string;
  metrics: Metrics;
  log: Logger;
  timeoutMs?: number;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

function needleUrl(base: string, fid: string): string {
  return `${base}/needles/${fid}`;
}

function describe(url: string, err: unknown): string {
  const e = err as { code?: string; message?: string };
  return `${url}: ${e.code ?? ''} ${e.message ?? String(err)}`.trim();
}

export async function replicatedPut(
  ctx: ReplicationContext,
  w: { fid: string; block: number; meta: NeedleMeta; data: Buffer; crc: number; replicas: string[]; requestId?: string },
): Promise<PutResult> {
  const started = process.hrtime.bigint();
  const headers = forwardHeaders(ctx, w.requestId, 'application/octet-stream');
  headers[HEADERS.mime] = w.meta.mime;
  headers[HEADERS.owner] = w.meta.owner;
  headers[HEADERS.uploadTime] = String(w.meta.uploadTime);
  headers[HEADERS.crc] = String(w.crc);
  const [local, ...remote] = await Promise.all([
    settle(ctx.store.put(w.block, w.meta, w.data, w.crc)),
    ...w.replicas.map((url) =>
      settle(putBytes(needleUrl(url, w.fid), w.data, headers, ctx.timeoutMs ?? 10_000).then(expectOk)),
    ),
  ]);
  if (w.replicas.length > 0) ctx.metrics.replicationDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  const peers = w.replicas.map((url, i): PeerCopy => {
    const r = remote[i]!;
    return { url, copy: r.ok ? { ok: true, existed: wasExisting(r.value.body) } : r };
  });
  return conclude(ctx, w, local!, peers);
}

/** One write of a batch, checked and ready to store. */
export interface BatchItem {
  fid: string;
  meta: NeedleMeta;
  data: Buffer;
  crc: number;
}

/**
 * replicatedPut for several writes to one block: the local appends join one group commit,
 * and each peer gets one request carrying every record (a needle batch frame), so a batch of
 * N writes costs each peer one HTTP exchange instead of N. Every write still ends on its own,
 * with replicatedPut's rules: acknowledged only where every copy landed, undone elsewhere.
 */
export async function replicatedBatchPut(
  ctx: ReplicationContext,
  w: { block: number; items: BatchItem[]; replicas: string[]; requestId?: string; /** the items already framed, in order */ frame?: Buffer },
): Promise<Outcome<PutResult>[]> {
  const started = process.hrtime.bigint();
  let frame = w.frame;
  if (w.replicas.length > 0 && !frame) {
    frame = Buffer.concat(encodeNeedleBatch(w.items.map((it) => ({ fid: it.fid, mime: it.meta.mime, owner: it.meta.owner, uploadTime: it.meta.uploadTime, crc: it.crc, data: it.data }))));
  }
  const headers = forwardHeaders(ctx, w.requestId, BATCH_CONTENT_TYPE);
  const path = DS_ROUTES.blockNeedles.replace(':id', String(w.block));
  const [local, remote] = await Promise.all([
    Promise.all(w.items.map((it) => settle(ctx.store.put(w.block, it.meta, it.data, it.crc)))),
    Promise.all(w.replicas.map((url) => settle(sendBytes('POST', url + path, frame!, headers, ctx.timeoutMs ?? 10_000).then((res) => parseBatchResults(expectOk(res).body, w.items.length, url))))),
  ]);
  if (w.replicas.length > 0) ctx.metrics.replicationDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return Promise.all(
    w.items.map((it, i) => {
      const peers = w.replicas.map((url, j): PeerCopy => {
        const r = remote[j]!;
        return { url, copy: r.ok ? itemCopy(r.value[i]!) : r };
      });
      return settle(conclude(ctx, { fid: it.fid, block: w.block, meta: it.meta }, local[i]!, peers));
    }),
  );
}

function forwardHeaders(ctx: ReplicationContext, requestId: string | undefined, contentType: string): Record<string, string> {
  const headers: Record<string, string> = { 'content-type': contentType };
  // The replicas log under the primary's request id, so one write reads as one story.
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  if (ctx.secret) headers[SECRET_HEADER] = ctx.secret;
  return headers;
}

/** What one peer did with one write. */
type PeerCopy = { url: string; copy: { ok: true; existed: boolean } | { ok: false; error: unknown } };

/**
 * The end of one replicated write, from what each copy did. Only copies this request created
 * may be undone: a replica that already held the very same record (a retried write) holds a
 * copy some earlier request was acknowledged for.
 */
async function conclude(ctx: ReplicationContext, w: { fid: string; block: number; meta: NeedleMeta }, local: Outcome<PutResult>, peers: PeerCopy[]): Promise<PutResult> {
  const landed = peers.filter((p) => p.copy.ok && !p.copy.existed).map((p) => p.url);
  const failed = peers.filter((p) => !p.copy.ok);
  if (!local.ok) {
    await undoRemote(ctx, w.fid, landed);
    throw local.error;
  }
  if (failed.length > 0) {
    ctx.metrics.replicationFailures.inc(failed.length);
    if (!local.value.existed) {
      await ctx.store.delete(w.block, w.meta.key, w.meta.cookie).catch((err: unknown) => ctx.log.error({ err, fid: w.fid }, 'could not tombstone a write that failed to replicate'));
    }
    await undoRemote(ctx, w.fid, landed);
    const why = failed.map((p) => describe(p.url, (p.copy as { error: unknown }).error)).join('; ');
    ctx.log.warn({ fid: w.fid, why }, 'write not acknowledged by every replica');
    throw new UgcfsError('UGCFS_ERR_REPLICATION', `not every replica stored the write: ${why}`);
  }
  return local.value;
}

function itemCopy(r: BatchItemResult): PeerCopy['copy'] {
  if ('error' in r) return { ok: false, error: batchItemError(r) };
  return { ok: true, existed: r.existed === true };
}

async function undoRemote(ctx: ReplicationContext, fid: string, urls: string[]): Promise<void> {
  await Promise.all(
    urls.map((url) =>
      callRaw(needleUrl(url, fid), { method: 'DELETE', secret: ctx.secret, timeoutMs: ctx.timeoutMs }).catch((err: unknown) =>
        ctx.log.warn({ err: String(err), fid, url }, 'could not undo a replica of a failed write'),
      ),
    ),
  );
}

/** Deletes locally and on every peer; a peer that never had it counts as done. 404 only if no one had it. */
export async function replicatedDelete(ctx: ReplicationContext, d: { fid: string; block: number; key: bigint; cookie: number; replicas: string[] }): Promise<void> {
  const [local, ...remote] = await Promise.all([
    settle(ctx.store.delete(d.block, d.key, d.cookie)),
    ...d.replicas.map((url) => settle(callRaw(needleUrl(url, d.fid), { method: 'DELETE', secret: ctx.secret, timeoutMs: ctx.timeoutMs }))),
  ]);
  if (!local!.ok && !isUgcfsError(local!.error, 'UGCFS_ERR_NOT_FOUND')) throw local!.error;
  let anyDeleted = local!.ok;
  const failed: string[] = [];
  d.replicas.forEach((url, i) => {
    const r = remote[i]!;
    if (!r.ok) return void failed.push(describe(url, r.error));
    if (r.value.status === 404) return;
    try {
      expectOk(r.value);
      anyDeleted = true;
    } catch (err) {
      failed.push(describe(url, err));
    }
  });
  if (failed.length > 0) {
    ctx.metrics.replicationFailures.inc(failed.length);
    throw new UgcfsError('UGCFS_ERR_REPLICATION', `not every replica applied the delete: ${failed.join('; ')}`);
  }
  if (!anyDeleted) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
}

function wasExisting(body: Buffer): boolean {
  try {
    return (JSON.parse(body.toString('utf8')) as Partial<WriteResult>).existed === true;
  } catch {
    return false;
  }
}
