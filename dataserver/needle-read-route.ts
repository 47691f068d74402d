// The hot read route, GET|HEAD /needles/<fid>, answered straight from node:http ahead of
// fastify; it is the route's only implementation (with or without a query string). Profiles
// showed the framework's per-request work (routing, hooks, child loggers, reply pipeline)
// costing about as much CPU as the read itself; this path keeps everything that matters —
// the cluster secret, the stable error answer, request metrics, one index lookup and one
// pread — and hands every other request to fastify unchanged.
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { answerError, givenRequestId, InFlight, requestId, RouteMeter, serveAhead } from '../src/http/ahead-route.ts';
import { UgcfsError } from '../src/base/errors.ts';
import { decodeFid, fidTextFromPath } from '../src/wire/file-id.ts';
import type { AccessLog } from '../src/http/access-log.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { DS_ROUTES, HEADERS } from '../src/wire/protocol.ts';
import { connectionSecretGuard, type CredentialRule } from '../src/base/secret.ts';
import type { ReadOptions } from './block-read.ts';
import type { BlockStore } from './block-store.ts';
import type { Needle } from './needle.ts';
import { BufferPool } from './buffer-pool.ts';

const PREFIX = '/needles/';
const ROUTE = DS_ROUTES.needle;

export interface ReadRouteContext {
  store: BlockStore;
  /** who may read: the file rule (cluster secret or origins' credential) */
  rule: CredentialRule;
  metrics: Metrics;
  log: Logger;
  /** the server's --access-log writer (ServerBase.access) */
  access?: AccessLog;
  /** --read-buffer-pool-bytes */
  poolBytes: number;
}

/**
 * Puts the read route in front of fastify's request listener. Shutdown follows fastify's
 * (src/http/ahead-route.ts InFlight): from preClose on, new reads are refused with 503, and close
 * waits for the reads in flight, which therefore finish before the store closes.
 */
export function installNeedleReadRoute(app: FastifyInstance, ctx: ReadRouteContext): void {
  const pool = new BufferPool(ctx.poolBytes);
  const take = (length: number) => pool.take(length);
  const st: RouteState = {
    ctx,
    meter: new RouteMeter(ctx.metrics, ROUTE, ctx.access),
    flight: new InFlight(app),
    checkSecret: connectionSecretGuard(ctx.rule),
    pool,
    serverChecks: { take, clientChecks: false },
    clientChecks: { take, clientChecks: true },
  };
  serveAhead(app.server as Server, (req, res) => {
    const url = req.url ?? '';
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || !url.startsWith(PREFIX)) return false;
    // The query string is not the route's: /needles/<fid>?x=1 is the same read.
    const q = url.indexOf('?', PREFIX.length);
    const end = q < 0 ? url.length : q;
    const slash = url.indexOf('/', PREFIX.length);
    if (slash >= 0 && slash < end) return false;
    st.flight.begin();
    serve(st, req, res, q < 0 ? url.slice(PREFIX.length) : url.slice(PREFIX.length, q), method === 'HEAD');
    return true;
  });
}

interface RouteState {
  ctx: ReadRouteContext;
  meter: RouteMeter;
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
      const rid = givenRequestId(req.headers);
      try {
        respond(st, res, head, n, rid);
      } catch (err) {
        // e.g. a stored media type node refuses as a header value
        fail(st, req, res, head, started, err);
        return;
      }
      finish(st, req, head, 200, started, n.data.length, rid);
    },
    (err: unknown) => fail(st, req, res, head, started, err),
  );
}

/** A successful read echoes the client's plain request id and makes none up (one less cost per read). */
function respond(st: RouteState, res: ServerResponse, head: boolean, n: Needle, rid: string | undefined): void {
  const { pool } = st;
  // A flat list, not an object: node walks it without for-in and property lookups.
  const headers: (string | number)[] = ['content-type', n.mime || 'application/octet-stream', 'content-length', n.data.length, HEADERS.crc, n.dataCrc, HEADERS.uploadTime, n.uploadTime, 'cache-control', 'no-store'];
  if (n.owner) headers.push(HEADERS.owner, n.owner);
  if (rid !== undefined) headers.push('x-request-id', rid);
  // while closing, keep-alive clients are asked to go, as fastify's onSend hook does
  if (st.flight.closing) headers.push('connection', 'close');
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

/** An error answer carries a request id always: the client's, else a new one, also in the log line. */
function fail(st: RouteState, req: IncomingMessage, res: ServerResponse, head: boolean, started: number, err: unknown): void {
  const rid = requestId(req.headers);
  const status = answerError(res, err, st.ctx.log, rid, st.flight.closing);
  finish(st, req, head, status, started, undefined, rid);
}

function finish(st: RouteState, req: IncomingMessage, head: boolean, status: number, started: number, bytes: number | undefined, rid: string | undefined): void {
  st.meter.done(head ? 'HEAD' : 'GET', req.url ?? '', status, started, bytes, rid);
  st.flight.end();
}
