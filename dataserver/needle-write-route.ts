// The hot write routes, answered straight from node:http ahead of fastify: PUT /needles/<fid>
// (a client's write to the primary and the primary's forward to each replica) and POST
// /blocks/<id>/needles (a needle batch, needle-batch-write.ts). Profiles of replicated writes
// showed the framework's per-request work (routing, hooks, child loggers, body parser, reply
// pipeline) paid twice per write, once on each copy. This path keeps all the routes do —
// cluster secret, body limit, header checks with their stable codes, CRC check, replication
// and its failure semantics, request id, metrics, graceful close — and hands every other
// request to fastify unchanged. These are the routes' only implementation: a URL with a query
// string is the same write.
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { crc32c } from '@node-rs/crc32';
import type { FastifyInstance } from 'fastify';
import { answerError, InFlight, requestId, RouteMeter, serveAhead } from '../src/http/ahead-route.ts';
import { UgcfsError } from '../src/base/errors.ts';
import { decodeFid, fidTextFromPath } from '../src/wire/file-id.ts';
import { DS_ROUTES, HEADERS, type WriteResult } from '../src/wire/protocol.ts';
import { connectionSecretGuard } from '../src/base/secret.ts';
import { replicatedPut, type ReplicationContext } from './replication.ts';
import { storeNeedleBatch } from './needle-batch-write.ts';
import { BufferPool } from './buffer-pool.ts';
import { bad, checkMeta, header, isRepair, parseBlockId, parseReplicas, writeResult, type NeedleWriteContext } from './write-checks.ts';

function parseMeta(headers: IncomingHttpHeaders): { mime: string; owner: string; uploadTime: number } {
  const mime = header(headers, HEADERS.mime) ?? header(headers, 'content-type') ?? 'application/octet-stream';
  const owner = header(headers, HEADERS.owner) ?? '';
  checkMeta(mime, owner, { mime: HEADERS.mime, owner: HEADERS.owner });
  const t = header(headers, HEADERS.uploadTime);
  let uploadTime = Date.now();
  if (t !== undefined) {
    if (!/^\d{1,15}$/.test(t)) throw bad(`${HEADERS.uploadTime} must be milliseconds since the epoch`);
    uploadTime = Number(t);
  }
  return { mime, owner, uploadTime };
}

/**
 * One needle's write: checks in the order the API promises (file id, empty body, metadata
 * headers, replicas, CRC), then a repair copy or a replicated put.
 */
async function storeNeedle(
  ctx: NeedleWriteContext,
  repl: ReplicationContext,
  w: { fidText: string; headers: IncomingHttpHeaders; body: Buffer | undefined; requestId?: string },
): Promise<WriteResult> {
  const text = w.fidText;
  const fid = decodeFid(text);
  const data = w.body;
  if (!data || data.length === 0) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'the body has no bytes');
  const meta = parseMeta(w.headers);
  const replicas = parseReplicas(w.headers);
  const crc = crc32c(data);
  const expected = header(w.headers, HEADERS.crc);
  if (expected !== undefined && expected !== String(crc)) throw bad(`the body does not match ${HEADERS.crc}: it was damaged on the way`);
  const needleMeta = { key: fid.key, cookie: fid.cookie, ...meta };
  const repair = isRepair(w.headers, replicas, ctx.rules);
  const r = repair
    ? await ctx.store.put(fid.block, needleMeta, data, crc, { repair: true })
    : await replicatedPut(repl, { fid: text, block: fid.block, meta: needleMeta, data, crc, replicas, requestId: w.requestId });
  if (repair) ctx.log.info({ fid: text, existed: r.existed }, 'record copied in by repair');
  return writeResult(text, r);
}

const PREFIX = '/needles/';
/** POST /blocks/<id>/needles: a needle batch (needle-batch-write.ts) */
const BLOCKS = '/blocks/';
const NEEDLES = '/needles';

interface RouteState {
  ctx: NeedleWriteContext;
  repl: ReplicationContext;
  meter: { put: RouteMeter; batch: RouteMeter };
  /** writes in hand; fastify's close waits for them */
  flight: InFlight;
  /** the file credential check, memoised per connection (src/base/secret.ts) */
  checkSecret: (req: IncomingMessage) => void;
  /** buffers for request bodies of a declared length (buffer-pool.ts) */
  bodies: BufferPool;
}

/**
 * A batch is at most the client's 4 MiB of data plus its frame; a bigger body (a PUT of a large
 * file) is gathered chunk by chunk as before. Pooled bodies were measured on replicated 20 KB writes
 * (bench/cluster-write.ts, replicas 2, four alternating pairs): 2,017-2,332 writes/s against
 * 1,712-2,102 without, the data servers' collector time down by a quarter to a third.
 */
const MAX_POOLED_BODY = 8 * 1024 * 1024;

/** What a request asks to write: one needle, or a batch of them to one block. */
type WriteTarget = { kind: 'put'; fidText: string } | { kind: 'batch'; blockText: string };

/** The route a request is for, as fastify's router would match it; its query string is not the route's. */
function targetOf(req: IncomingMessage): WriteTarget | undefined {
  const method = req.method;
  if (method !== 'PUT' && method !== 'POST') return undefined;
  const url = req.url ?? '';
  const start = method === 'PUT' ? PREFIX.length : BLOCKS.length;
  if (!url.startsWith(method === 'PUT' ? PREFIX : BLOCKS)) return undefined;
  const q = url.indexOf('?', start);
  const end = q < 0 ? url.length : q;
  const slash = url.indexOf('/', start);
  if (method === 'PUT') return slash >= 0 && slash < end ? undefined : { kind: 'put', fidText: url.slice(start, end) };
  // /blocks/<id>/needles, <id> one path segment
  if (slash < 0 || end - slash !== NEEDLES.length || !url.startsWith(NEEDLES, slash)) return undefined;
  return { kind: 'batch', blockText: url.slice(start, slash) };
}

/** A block id as fastify decoded path parameters; one that does not decode is refused as it stands. */
function blockIdOf(text: string): number {
  if (text.indexOf('%') >= 0) {
    try {
      text = decodeURIComponent(text);
    } catch {
      // parseBlockId refuses it
    }
  }
  return parseBlockId(text);
}

/**
 * Puts the write routes (a PUT of one needle, a POST of a needle batch) in front of fastify's
 * request listener: the batch route's per-request framework cost is paid per batch, but a
 * small batch still paid it in full. Shutdown follows fastify's (src/http/ahead-route.ts
 * InFlight): from preClose on, new writes are refused with 503 (connection: close), and
 * close waits for the writes in flight, which therefore finish before the store closes.
 */
export function installNeedleWriteRoute(app: FastifyInstance, ctx: NeedleWriteContext, repl: ReplicationContext): void {
  const st: RouteState = {
    ctx,
    repl,
    meter: { put: new RouteMeter(ctx.metrics, DS_ROUTES.needle, ctx.access), batch: new RouteMeter(ctx.metrics, DS_ROUTES.blockNeedles, ctx.access) },
    flight: new InFlight(app),
    checkSecret: connectionSecretGuard(ctx.rules.file),
    bodies: new BufferPool(ctx.bodyPoolBytes ?? 0, MAX_POOLED_BODY),
  };
  serveAhead(app.server as Server, (req, res) => {
    const target = targetOf(req);
    if (target === undefined) return false;
    st.flight.begin();
    void serve(st, req, res, target);
    return true;
  });
}

/** One write request; whatever happens to it, it leaves the in-flight count (a try/finally, not a closure per write). */
async function serve(st: RouteState, req: IncomingMessage, res: ServerResponse, target: WriteTarget): Promise<void> {
  const { ctx, flight } = st;
  const method = target.kind === 'put' ? 'PUT' : 'POST';
  // The body's pooled buffer, given back once the request is answered: by then the appends and
  // the forwards that read it have ended (replication.ts awaits every copy before concluding;
  // a forward that timed out has had its socket destroyed).
  let pooled: Buffer | undefined;
  try {
    const started = performance.now();
    const rid = requestId(req.headers);
    let status = target.kind === 'put' ? 201 : 200;
    let bytes = 0;
    try {
      if (flight.closing) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'data server is shutting down');
      st.checkSecret(req);
      // A bad block id is refused before the body is read, as fastify's param check did.
      const block = target.kind === 'batch' ? blockIdOf(target.blockText) : 0;
      const declared = declaredLength(req, ctx.blockSize);
      // Larger declared bodies are gathered as they arrive, not reserved up front.
      if (declared > 0 && declared <= MAX_POOLED_BODY) pooled = st.bodies.take(declared);
      const body = await readBody(req, res, ctx.blockSize, pooled);
      const out =
        target.kind === 'put'
          ? await storeNeedle(ctx, st.repl, { fidText: fidTextFromPath(target.fidText), headers: req.headers, body, requestId: rid })
          : await storeNeedleBatch(ctx, st.repl, { block, headers: req.headers, body, requestId: rid });
      const json = JSON.stringify(out);
      bytes = Buffer.byteLength(json);
      const headers: Record<string, string | number> = { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes, 'x-request-id': rid };
      // while closing, keep-alive clients are asked to go, as fastify's onSend hook does
      if (flight.closing) headers.connection = 'close';
      res.writeHead(status, headers);
      res.end(json);
    } catch (err) {
      // An unread body is discarded by node:http once the answer is sent, as for fastify.
      const unsent = !res.headersSent && !res.destroyed;
      status = answerError(res, err, ctx.log, rid, flight.closing);
      if (unsent) bytes = Number(res.getHeader('content-length') ?? 0);
    }
    st.meter[target.kind].done(method, req.url ?? '', status, started, bytes, rid);
  } finally {
    if (pooled) st.bodies.give(pooled);
    flight.end();
  }
}

/**
 * The body length the request declares (content-length), -1 when it is chunked. A declared
 * length over the limit is refused before a byte is read, as fastify does.
 */
function declaredLength(req: IncomingMessage, limit: number): number {
  const declared = req.headers['content-length'];
  if (declared === undefined) return -1;
  const n = Number(declared);
  if (n > limit) throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `request body is larger than ${limit} bytes`);
  return n;
}

/**
 * The whole body, at most `limit` bytes. With `into` (a buffer of the declared length; node's
 * parser delivers exactly that many bytes or fails) the chunks are copied into it as they
 * come, and no other buffer is made; a chunked body is gathered and cut off once it passes
 * the limit.
 */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number, into: Buffer | undefined): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      if (length + chunk.length > (into ? into.length : limit)) {
        cleanup();
        reject(new UgcfsError('UGCFS_ERR_TOO_LARGE', `request body is larger than ${into ? `its declared ${into.length}` : limit} bytes`));
        return;
      }
      if (into) chunk.copy(into, length);
      else chunks.push(chunk);
      length += chunk.length;
    };
    const onEnd = () => {
      cleanup();
      if (length === 0) resolve(undefined);
      else if (into) resolve(into.subarray(0, length));
      else resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length));
    };
    // The client went away mid-body: nothing is written, and no one is left to answer.
    const onAbort = () => {
      cleanup();
      res.destroy();
      reject(new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'the client closed the connection before the body was complete'));
    };
    const cleanup = () => {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('aborted', onAbort);
      req.removeListener('error', onAbort);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('aborted', onAbort);
    req.on('error', onAbort);
  });
}
