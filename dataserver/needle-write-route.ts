// The hot write route, PUT /needles/<fid> (a client's write to the primary and the primary's
// forward to each replica), answered straight from node:http ahead of fastify. Profiles of
// replicated writes showed the framework's per-request work (routing, hooks, child loggers,
// body parser, reply pipeline) paid twice per write, once on each copy. This path keeps all
// the route does — cluster secret, body limit, header checks with their stable codes, CRC
// check, replication and its failure semantics, request id, metrics, graceful close — and
// hands every other request to fastify unchanged. The fastify route stays for the URLs this
// one leaves alone (a query string, percent-encoded slashes), and both run storeNeedle().
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import { crc32c } from '@node-rs/crc32';
import type { FastifyInstance } from 'fastify';
import { InFlight, serveAhead } from '../src/ahead-route.ts';
import { UgcfsError, isUgcfsError } from '../src/errors.ts';
import { decodeFid, fidTextFromPath } from '../src/file-id.ts';
import type { AccessLog } from '../src/access-log.ts';
import type { Logger } from '../src/log.ts';
import { routeRecorder, type Metrics, type RouteRecorder } from '../src/metrics.ts';
import { DS_ROUTES, HEADERS, type WriteResult } from '../src/protocol.ts';
import { connectionSecretGuard } from '../src/secret.ts';
import type { BlockStore } from './block-store.ts';
import { replicatedPut, type ReplicationContext } from './replication.ts';

export interface NeedleWriteContext {
  store: BlockStore;
  secret: string;
  blockSize: number;
  metrics: Metrics;
  log: Logger;
  /** the server's --access-log writer (ServerBase.access); without it, writes here log no access line */
  access?: AccessLog;
}

const MIME = /^[A-Za-z0-9!#$&^_.+-]{1,127}\/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;[\x20-\x7e]*)?$/;
const PRINTABLE = /^[\x20-\x7e]*$/;
const REQUEST_ID = /^[\w.-]{1,64}$/;

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function bad(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_REQUEST', message);
}

export function parseReplicas(headers: IncomingHttpHeaders): string[] {
  const raw = header(headers, HEADERS.replicas);
  if (raw === undefined || raw.trim() === '') return [];
  return raw.split(',').map((s) => {
    const u = s.trim();
    try {
      const parsed = new URL(u);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw bad(`${HEADERS.replicas} holds something that is not an http(s) URL`);
    }
    return u.replace(/\/+$/, '');
  });
}

/** verify --repair's header: the write is for this copy alone, so it cannot name peers. */
export function isRepair(headers: IncomingHttpHeaders, replicas: string[]): boolean {
  const v = header(headers, HEADERS.repair);
  if (v === undefined) return false;
  if (v !== '1') throw bad(`${HEADERS.repair} must be 1`);
  if (replicas.length > 0) throw bad(`a ${HEADERS.repair} write is never forwarded: drop ${HEADERS.replicas}`);
  return true;
}

/** A record's media type and owner as every write route accepts them; `from` names where they came from. */
export function checkMeta(mime: string, owner: string, from: { mime: string; owner: string }): void {
  if (mime.length > 255 || !MIME.test(mime)) throw bad(`${from.mime} is not a media type`);
  if (owner.length > 255 || !PRINTABLE.test(owner)) throw bad(`${from.owner} must be at most 255 printable ASCII characters`);
}

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
 * The write itself, whichever route received it: checks in the order the API promises (file
 * id, empty body, metadata headers, replicas, CRC), then a repair copy or a replicated put.
 */
export async function storeNeedle(
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
  const repair = isRepair(w.headers, replicas);
  const r = repair
    ? await ctx.store.put(fid.block, needleMeta, data, crc, { repair: true })
    : await replicatedPut(repl, { fid: text, block: fid.block, meta: needleMeta, data, crc, replicas, requestId: w.requestId });
  if (repair) ctx.log.info({ fid: text, existed: r.existed }, 'record copied in by repair');
  const out: WriteResult = { fid: text, size: r.size, crc: r.crc };
  if (r.existed) out.existed = true;
  return out;
}

const PREFIX = '/needles/';
const ROUTE = DS_ROUTES.needle;
/** fastify's maxParamLength: a longer id is fastify's "no route", so it stays fastify's */
const MAX_FID_TEXT = 2048;

interface RouteState {
  ctx: NeedleWriteContext;
  repl: ReplicationContext;
  record: RouteRecorder;
  /** writes in hand; fastify's close waits for them */
  flight: InFlight;
  /** the cluster secret, memoised per connection (src/secret.ts) */
  checkSecret: (req: IncomingMessage) => void;
}

/**
 * Puts the write route in front of fastify's request listener. Shutdown follows fastify's
 * (src/ahead-route.ts InFlight): from preClose on, new writes are refused with 503
 * (connection: close), and close waits for the writes in flight, which therefore finish
 * before the store closes.
 */
export function installNeedleWriteRoute(app: FastifyInstance, ctx: NeedleWriteContext, repl: ReplicationContext): void {
  const st: RouteState = { ctx, repl, record: routeRecorder(ctx.metrics, ROUTE), flight: new InFlight(app), checkSecret: connectionSecretGuard(ctx.secret) };
  serveAhead(app.server as Server, (req, res) => {
    const url = req.url ?? '';
    if (req.method !== 'PUT' || !url.startsWith(PREFIX) || url.length > PREFIX.length + MAX_FID_TEXT || url.indexOf('/', PREFIX.length) >= 0 || url.indexOf('?') >= 0) return false;
    st.flight.begin();
    void serve(st, req, res, url.slice(PREFIX.length));
    return true;
  });
}

/** One write; whatever happens to it, it leaves the in-flight count (a try/finally, not a closure per write). */
async function serve(st: RouteState, req: IncomingMessage, res: ServerResponse, fidText: string): Promise<void> {
  const { ctx, flight } = st;
  try {
    const started = process.hrtime.bigint();
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    let status = 201;
    let bytes = 0;
    try {
      if (flight.closing) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'data server is shutting down');
      st.checkSecret(req);
      const body = await readBody(req, res, ctx.blockSize);
      const out = await storeNeedle(ctx, st.repl, { fidText: fidTextFromPath(fidText), headers: req.headers, body, requestId });
      const json = JSON.stringify(out);
      bytes = Buffer.byteLength(json);
      res.writeHead(201, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': bytes,
        'x-request-id': requestId,
        // while closing, keep-alive clients are asked to go, as fastify's onSend hook does
        ...(flight.closing ? { connection: 'close' } : {}),
      });
      res.end(json);
    } catch (err) {
      const e = isUgcfsError(err) ? err : new UgcfsError('UGCFS_ERR_INTERNAL', 'internal error', { cause: err });
      status = e.status;
      if (e.status >= 500) ctx.log.error({ err, code: e.code, reqId: requestId }, 'request failed');
      else ctx.log.debug({ code: e.code, reason: e.message, reqId: requestId }, 'request refused');
      if (!res.headersSent && !res.destroyed) {
        const json = JSON.stringify(e.toJSON());
        bytes = Buffer.byteLength(json);
        const headers: Record<string, string | number> = {
          'content-type': 'application/json; charset=utf-8',
          'content-length': bytes,
          'cache-control': 'no-store',
          'x-content-type-options': 'nosniff',
          'x-request-id': requestId,
          ...e.headers,
        };
        // An unread body is discarded by node:http once the answer is sent, as for fastify.
        if (flight.closing) headers.connection = 'close';
        res.writeHead(e.status, headers);
        res.end(json);
      }
    }
    st.record('PUT', status, Number(process.hrtime.bigint() - started) / 1e9);
    ctx.access?.('PUT', req.url ?? '', status, started, bytes, requestId);
  } finally {
    flight.end();
  }
}

/**
 * The whole body, at most `limit` bytes. A declared length over the limit is refused before
 * a byte is read (as fastify does); a chunked body is cut off once it passes the limit.
 */
function readBody(req: IncomingMessage, res: ServerResponse, limit: number): Promise<Buffer | undefined> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    return Promise.reject(new UgcfsError('UGCFS_ERR_TOO_LARGE', `request body is larger than ${limit} bytes`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const onData = (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) {
        cleanup();
        reject(new UgcfsError('UGCFS_ERR_TOO_LARGE', `request body is larger than ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length));
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
