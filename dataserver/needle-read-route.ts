// The hot read route, GET|HEAD /needles/<fid>, answered straight from node:http ahead of
// fastify. Profiles showed the framework's per-request work (routing, hooks, child loggers,
// reply pipeline) costing about as much CPU as the read itself; this path keeps everything
// that matters — the cluster secret, the stable error body, request metrics, one index
// lookup and one pread — and hands every other request to fastify unchanged.
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { InFlight, serveAhead } from '../src/ahead-route.ts';
import { UgcfsError, isUgcfsError } from '../src/errors.ts';
import { decodeFid, fidTextFromPath } from '../src/file-id.ts';
import type { AccessLog } from '../src/access-log.ts';
import type { Logger } from '../src/log.ts';
import { routeRecorder, type Metrics, type RouteRecorder } from '../src/metrics.ts';
import { DS_ROUTES, HEADERS } from '../src/protocol.ts';
import { connectionSecretGuard } from '../src/secret.ts';
import type { ReadOptions } from './block-read.ts';
import type { BlockStore } from './block-store.ts';
import type { Needle } from './needle.ts';
import { BufferPool } from './buffer-pool.ts';

const PREFIX = '/needles/';
const ROUTE = DS_ROUTES.needle;
const REQUEST_ID = /^[\w.-]{1,64}$/;

export interface ReadRouteContext {
  store: BlockStore;
  secret: string;
  metrics: Metrics;
  log: Logger;
  /** the server's --access-log writer (ServerBase.access) */
  access?: AccessLog;
  /** --read-buffer-pool-bytes */
  poolBytes: number;
}

/**
 * Puts the read route in front of fastify's request listener. Shutdown follows fastify's
 * (src/ahead-route.ts InFlight): from preClose on, new reads are refused with 503, and close
 * waits for the reads in flight, which therefore finish before the store closes.
 */
export function installNeedleReadRoute(app: FastifyInstance, ctx: ReadRouteContext): void {
  const pool = new BufferPool(ctx.poolBytes);
  const take = (length: number) => pool.take(length);
  const st: RouteState = {
    ctx,
    record: routeRecorder(ctx.metrics, ROUTE),
    flight: new InFlight(app),
    checkSecret: connectionSecretGuard(ctx.secret),
    pool,
    serverChecks: { take, clientChecks: false },
    clientChecks: { take, clientChecks: true },
  };
  serveAhead(app.server as Server, (req, res) => {
    const url = req.url ?? '';
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || !url.startsWith(PREFIX) || url.indexOf('/', PREFIX.length) >= 0 || url.indexOf('?') >= 0) return false;
    st.flight.begin();
    serve(st, req, res, url.slice(PREFIX.length), method === 'HEAD');
    return true;
  });
}

interface RouteState {
  ctx: ReadRouteContext;
  record: RouteRecorder;
  /** reads in hand; fastify's close waits for them */
  flight: InFlight;
  checkSecret: (req: IncomingMessage) => void;
  pool: BufferPool;
  serverChecks: ReadOptions;
  clientChecks: ReadOptions;
}

/**
 * One read, written without async functions: everything but the pread runs synchronously,
 * so a read costs one promise instead of a chain of them (a measurable share of its CPU).
 */
function serve(st: RouteState, req: IncomingMessage, res: ServerResponse, fidText: string, head: boolean): void {
  const started = performance.now();
  let read: Promise<Needle>;
  try {
    if (st.flight.closing) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'data server is shutting down');
    st.checkSecret(req);
    const fid = decodeFid(fidTextFromPath(fidText));
    read = st.ctx.store.read(fid.block, fid.key, fid.cookie, req.headers[HEADERS.verify] === 'client' ? st.clientChecks : st.serverChecks);
  } catch (err) {
    fail(st, req, res, head, started, err);
    return;
  }
  read.then(
    (n) => {
      try {
        respond(st.pool, req, res, head, n);
      } catch (err) {
        // e.g. a stored media type node refuses as a header value
        fail(st, req, res, head, started, err);
        return;
      }
      finish(st, req, head, 200, started, n.data.length);
    },
    (err: unknown) => fail(st, req, res, head, started, err),
  );
}

function respond(pool: BufferPool, req: IncomingMessage, res: ServerResponse, head: boolean, n: Needle): void {
  // A flat list, not an object: node walks it without for-in and property lookups.
  const headers: (string | number)[] = ['content-type', n.mime || 'application/octet-stream', 'content-length', n.data.length, HEADERS.crc, n.dataCrc, HEADERS.uploadTime, n.uploadTime, 'cache-control', 'no-store'];
  if (n.owner) headers.push(HEADERS.owner, n.owner);
  const rid = req.headers['x-request-id'];
  if (typeof rid === 'string' && REQUEST_ID.test(rid)) headers.push('x-request-id', rid);
  res.writeHead(200, headers);
  if (head) {
    res.end();
    pool.give(n.data);
  } else {
    // 'finish' comes once the bytes are with the kernel, and never after a socket error:
    // only then may another read fill this buffer (buffer-pool.ts).
    res.end(n.data, () => pool.give(n.data));
  }
}

function fail(st: RouteState, req: IncomingMessage, res: ServerResponse, head: boolean, started: number, err: unknown): void {
  const e = isUgcfsError(err) ? err : new UgcfsError('UGCFS_ERR_INTERNAL', 'internal error', { cause: err });
  try {
    if (e.status >= 500) st.ctx.log.error({ err, code: e.code }, 'read failed');
    const body = JSON.stringify(e.toJSON());
    if (!res.headersSent) {
      res.writeHead(e.status, {
        'content-type': 'application/json; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        ...e.headers,
      });
    }
    res.end(head ? undefined : body);
  } catch (x) {
    // the response cannot be written any more: the connection is all that is left to end
    st.ctx.log.error({ err: x }, 'read error response failed');
    req.socket.destroy();
  }
  finish(st, req, head, e.status, started, undefined);
}

function finish(st: RouteState, req: IncomingMessage, head: boolean, status: number, started: number, bytes: number | undefined): void {
  st.record(head ? 'HEAD' : 'GET', status, (performance.now() - started) / 1e3);
  if (st.ctx.access) {
    const rid = req.headers['x-request-id'];
    st.ctx.access(head ? 'HEAD' : 'GET', req.url ?? '', status, started, bytes, typeof rid === 'string' && REQUEST_ID.test(rid) ? rid : undefined);
  }
  st.flight.end();
}
