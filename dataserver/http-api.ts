// The data server's internal HTTP API: the DS_ROUTES of src/wire/protocol.ts, every one behind
// the cluster secret (declared per route, checked before any body byte is read). Bad input is refused before anything is written. The hot needle routes
// (GET|HEAD and PUT /needles/<fid>, POST /blocks/<id>/needles) are answered ahead of fastify,
// by needle-read-route.ts (installed by main.ts) and needle-write-route.ts, and only there.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Dispatcher } from 'undici';
import { UgcfsError } from '../src/base/errors.ts';
import { decodeFid, type Fid } from '../src/wire/file-id.ts';
import { DS_ROUTES, HEADERS, type BlockCreate, type QuarantineListing } from '../src/wire/protocol.ts';
import type { ClusterIdentity } from './cluster-identity.ts';
import { pullBlock } from './block-pull.ts';
import { BlockRangeStream } from './block-read.ts';
import { installNeedleWriteRoute } from './needle-write-route.ts';
import { bad, isRepair, parseBlockId, parseReplicas, type NeedleWriteContext } from './write-checks.ts';
import { replicatedDelete, type ReplicationContext } from './replication.ts';

/**
 * Every route here: the cluster secret, checked with the declared body limit (the default
 * 64 KiB: these take small JSON or nothing) before the body is read (src/http/request-gate.ts).
 */
const INTERNAL = { config: { auth: 'internal' } };
/** reading, writing, deleting files: the origins' credential reaches these too */
const FILE = { config: { auth: 'file' } };

export type ApiContext = NeedleWriteContext & {
  /** this server's cluster (cluster-identity.ts): a block creation from another is refused */
  identity?: ClusterIdentity;
  /** the agent calls to peers go through (--tls-ca); default the shared one */
  dispatcher?: Dispatcher;
};


function fidParam(req: FastifyRequest): { text: string; fid: Fid } {
  const text = (req.params as { fid: string }).fid;
  return { text, fid: decodeFid(text) };
}

function jsonBody<T extends object>(req: FastifyRequest): Partial<T> {
  const b = req.body;
  if (b === undefined || b === null) return {};
  if (typeof b !== 'object' || Array.isArray(b) || Buffer.isBuffer(b)) throw bad('body must be a JSON object');
  return b as Partial<T>;
}

export function registerDataserverRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const { store } = ctx;
  const repl: ReplicationContext = { store, secret: ctx.secret, metrics: ctx.metrics, log: ctx.log, dispatcher: ctx.dispatcher };
  installNeedleWriteRoute(app, ctx, repl);

  // A needle DELETE's body, if any, is not parsed (as the needle routes' bodies are raw bytes).
  void app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

    raw.delete(DS_ROUTES.needle, FILE, async (req, reply) => {
      const { text, fid } = fidParam(req);
      const replicas = parseReplicas(req.headers);
      if (isRepair(req.headers, replicas, ctx.rules)) {
        await store.delete(fid.block, fid.key, fid.cookie);
        ctx.log.info({ fid: text }, 'record deleted by repair');
      } else await replicatedDelete(repl, { fid: text, block: fid.block, key: fid.key, cookie: fid.cookie, replicas });
      reply.code(204).send();
    });
  });

  void app.register(async (api) => {
    const blockParam = (req: FastifyRequest) => parseBlockId((req.params as { id: string }).id);

    api.get(DS_ROUTES.blocks, INTERNAL, async () => store.reports());

    api.get(DS_ROUTES.block, INTERNAL, async (req) => store.block(blockParam(req)).report());

    api.post(DS_ROUTES.block, INTERNAL, async (req, reply) => {
      const id = blockParam(req);
      const body = jsonBody<BlockCreate>(req);
      // A name server's creation carries its cluster and lease ends (an operator's may not):
      // one of another cluster is refused, and the marks it teaches are kept first.
      if (body.cluster !== undefined && ctx.identity) {
        const refused = await ctx.identity.admit('asking to create a block', body);
        if (refused !== undefined) throw new UgcfsError('UGCFS_ERR_FOREIGN_CLUSTER', refused);
      }
      const created = await store.createBlock(id);
      const b = store.block(id);
      // Creation is idempotent for an empty block (a retried create), never for one holding
      // data: a name server asking for that id does not know the block (a lost state, another
      // cluster), and must not put new files under its id.
      if (!created && (b.meta.end > 0 || b.pulling || b.incomplete)) {
        throw new UgcfsError('UGCFS_ERR_CONFLICT', `block ${id} already exists here and holds data; its id cannot be created again`);
      }
      reply.code(created ? 201 : 200);
      return b.report();
    });

    api.delete(DS_ROUTES.block, INTERNAL, async (req, reply) => {
      await store.deleteBlock(blockParam(req));
      reply.code(204).send();
    });

    api.get(DS_ROUTES.blockData, INTERNAL, async (req, reply) => streamBlock(ctx, req, reply, blockParam(req)));

    api.post(DS_ROUTES.blockPull, INTERNAL, async (req) => {
      const id = blockParam(req);
      const { from } = jsonBody<{ from: string }>(req);
      if (typeof from !== 'string') throw bad('body must be {"from": "<peer base URL>"}');
      try {
        const u = new URL(from);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        throw bad('"from" must be an http(s) URL');
      }
      return pullBlock(store, id, from.replace(/\/+$/, ''), ctx.secret, undefined, ctx.dispatcher);
    });

    api.post(DS_ROUTES.blockReadonly, INTERNAL, async (req) => {
      const id = blockParam(req);
      const { readonly } = jsonBody<{ readonly: boolean }>(req);
      if (typeof readonly !== 'boolean') throw bad('body must be {"readonly": true|false}');
      return store.setReadonly(id, readonly);
    });

    api.post(DS_ROUTES.blockCompact, INTERNAL, async (req) => store.compact(blockParam(req)));

    api.post(DS_ROUTES.blockScrub, INTERNAL, async (req) => store.scrub(blockParam(req)));

    api.get(DS_ROUTES.blockKeys, INTERNAL, async (req) => store.keys(blockParam(req)));

    api.get(DS_ROUTES.quarantine, INTERNAL, async (): Promise<QuarantineListing> => ({ files: store.ctx.quarantine.list(), bytes: store.quarantineStats().bytes }));

    api.delete(DS_ROUTES.quarantineItem, INTERNAL, async (req, reply) => {
      const name = (req.params as { name: string }).name;
      if (!(await store.ctx.quarantine.remove(name))) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', `no quarantined file named ${JSON.stringify(name)}`);
      reply.code(204).send();
    });
  });
}

/** Streams committed block bytes from ?from= to the indexed end, pinned to one generation. */
async function streamBlock(ctx: ApiContext, req: FastifyRequest, reply: FastifyReply, id: number): Promise<FastifyReply> {
  const b = ctx.store.block(id);
  const q = req.query as { from?: string };
  const fromText = q.from ?? '0';
  if (!/^\d{1,15}$/.test(fromText)) throw new UgcfsError('UGCFS_ERR_BAD_PARAM', '?from= must be a byte offset');
  const file = b.file;
  const end = b.meta.end;
  const from = Math.min(Number(fromText), end);
  reply
    .header('content-type', 'application/octet-stream')
    .header(HEADERS.blockGen, String(file.gen))
    .header(HEADERS.blockSize, String(end))
    .header('cache-control', 'no-store');
  if (from >= end) return reply.send(Buffer.alloc(0));
  file.pin();
  const stream = new BlockRangeStream(file.fh.fd, from, end, () => file.unpin());
  // Counted up front: a 'data' listener here would start the stream before fastify pipes it.
  ctx.metrics.blockCopyBytes.inc({ direction: 'out' }, end - from);
  reply.header('content-length', String(end - from));
  return reply.send(stream);
}
