// The kernel of every route answered straight from node:http ahead of fastify (the data
// server's needle reads, writes and batches, the origin's memory hits), kept here once so
// those routes and fastify's own answer alike:
//   - the request-id rule (fastify's genReqId is requestId below);
//   - the one error answer, {"error":{"code","message"}}, which fastify's error handler
//     renders too (http-server.ts sendError), and its log line;
//   - a route's request metrics and access-log line, as fastify's onResponse hook writes them;
//   - taking the server's request listener, so that a request a route declines still reaches
//     fastify unchanged, with the server's gate (the Host check) in front of every route;
//   - graceful close for answers that outlive the listener call, which fastify cannot give
//     requests it never sees;
//   - with --otlp-endpoint, a request's SERVER span (src/base/trace.ts), begun as it arrives,
//     named after its route when the route meters it.
// The hot paths run through here: nothing below makes a closure or an object per request
// (tracing off; on, the span and its end listener are the request's).
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import type { AccessLog } from './access-log.ts';
import { UgcfsError } from '../base/errors.ts';
import type { Logger } from '../base/log.ts';
import { routeRecorder, type Metrics, type RouteRecorder } from '../base/metrics.ts';
import { currentSpan, nameServerSpan, type Tracer } from '../base/trace.ts';
import { closesUnreadBody } from './request-gate.ts';

const REQUEST_ID = /^[\w.-]{1,64}$/;

/** The request id the client sent, when it is a plain one (1-64 of [A-Za-z0-9_.-]). */
export function givenRequestId(headers: IncomingHttpHeaders): string | undefined {
  const given = headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : undefined;
}

/** The request's id: the client's own when it sent a plain one, else a new one. */
export function requestId(headers: IncomingHttpHeaders): string {
  return givenRequestId(headers) ?? randomUUID();
}

/** An error answer: what every ugcfs route, fastify's or ahead of it, sends for an error. */
export interface ErrorAnswer {
  status: number;
  headers: Record<string, string | number>;
  body: string;
}

/** The one error renderer. `cacheControl`: the origin lets clients cache errors briefly. */
export function errorAnswer(e: UgcfsError, cacheControl = 'no-store'): ErrorAnswer {
  const body = JSON.stringify(e.toJSON());
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': cacheControl,
    'x-content-type-options': 'nosniff',
  };
  if (e.headers) Object.assign(headers, e.headers);
  return { status: e.status, headers, body };
}

/**
 * The log line of a failed request: 5xx as errors, refusals at debug. `reqId` for a logger
 * that does not carry it already (fastify's req.log does).
 */
export function logFailure(log: Pick<Logger, 'error' | 'debug'> | FastifyBaseLogger, err: unknown, e: UgcfsError, reqId?: string): void {
  if (e.status >= 500) log.error(reqId === undefined ? { err, code: e.code } : { err, code: e.code, reqId }, 'request failed');
  else log.debug(reqId === undefined ? { code: e.code, reason: e.message } : { code: e.code, reason: e.message, reqId }, 'request refused');
}

/**
 * Answers `err` on a route ahead of fastify: typed, logged and rendered as fastify's error
 * handler would, with the request id, and `connection: close` while the server closes (as
 * fastify's onSend hook does). Returns the status. An answer already under way, or one that
 * cannot be written, has its connection ended instead.
 */
export function answerError(res: ServerResponse, err: unknown, log: Logger, reqId: string, closing: boolean): number {
  const e = toUgcfsError(err);
  try {
    logFailure(log, err, e, reqId);
    if (!res.headersSent && !res.destroyed) {
      const a = errorAnswer(e);
      a.headers['x-request-id'] = reqId;
      // An unread body: drained when small, else the connection goes (the rule fastify's routes follow)
      if (closing || closesUnreadBody(res.req, a.status)) a.headers.connection = 'close';
      res.writeHead(a.status, a.headers);
      // (a HEAD answer's body is dropped by node:http)
      res.end(a.body);
    } else if (!res.writableEnded) {
      // an answer already under way cannot turn into an error: the connection is ended
      res.destroy();
    }
  } catch (x) {
    log.error({ err: x, reqId }, 'error response failed');
    res.socket?.destroy();
  }
  return e.status;
}

/** Maps fastify's own errors onto the catalogue, so every error body has a ugcfs code. */
export function toUgcfsError(err: unknown): UgcfsError {
  if (err instanceof UgcfsError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string; validation?: unknown };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
    case 'FST_FILES_LIMIT':
      return new UgcfsError('UGCFS_ERR_TOO_LARGE', e.message);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_VALIDATION':
      return new UgcfsError('UGCFS_ERR_BAD_REQUEST', e.message);
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
    case 'FST_PARTS_LIMIT':
    case 'FST_FIELDS_LIMIT':
    case 'FST_PROTO_VIOLATION':
    case 'FST_NO_FORM_DATA':
      return new UgcfsError('UGCFS_ERR_BAD_MULTIPART', e.message);
  }
  if (e.validation) return new UgcfsError('UGCFS_ERR_BAD_REQUEST', e.message);
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.statusCode === 413) return new UgcfsError('UGCFS_ERR_TOO_LARGE', e.message);
    if (e.statusCode === 415) return new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', e.message);
    return new UgcfsError('UGCFS_ERR_BAD_REQUEST', e.message);
  }
  return new UgcfsError('UGCFS_ERR_INTERNAL', 'internal error', { cause: err });
}

/**
 * One route's request metrics (ugcfs_http_requests_total, ..._duration_seconds, labelled by
 * its fastify route pattern) and access-log line: what fastify's onResponse hook records for
 * its routes, and routes ahead of it call once per answer.
 */
export class RouteMeter {
  private readonly record: RouteRecorder;

  constructor(
    metrics: Metrics,
    private readonly route: string,
    private readonly access: AccessLog | undefined,
  ) {
    this.record = routeRecorder(metrics, route);
  }

  /** `started`: performance.now() when the request arrived; `reqId` undefined when it has none. */
  done(method: string, url: string, status: number, started: number, bytes: number | undefined, reqId: string | undefined): void {
    this.record(method, status, (performance.now() - started) / 1e3);
    if (this.access !== undefined) this.access(method, url, status, started, bytes, reqId);
    // tracing on: the span of the request answered here gets its route (fastify's routes are
    // named by their request in http-server.ts first; a span named already keeps its name)
    const span = currentSpan();
    if (span !== undefined && span.attributes['http.route'] === undefined) nameServerSpan(span, method, this.route, reqId);
  }
}

/** Answers the request and returns true, or returns false having written nothing. */
export type AheadAnswer = (req: IncomingMessage, res: ServerResponse) => boolean;

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** A server's request listener: its tracer's span, its gate (asked first, always), then its routes, last installed first. */
interface Chain {
  head: Listener;
  gate: AheadAnswer | undefined;
  tracer: Tracer | undefined;
}

const chains = new WeakMap<Server, Chain>();

/** Takes over the server's request listeners once: from then on every request goes through the chain. */
function chainOf(server: Server): Chain {
  const known = chains.get(server);
  if (known !== undefined) return known;
  const before = server.listeners('request') as Listener[];
  // One listener (fastify's) is the usual case: call it directly.
  const head: Listener =
    before.length === 1
      ? before[0]!
      : (req, res) => {
          for (const l of before) l.call(server, req, res);
        };
  const c: Chain = { head, gate: undefined, tracer: undefined };
  chains.set(server, c);
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (c.tracer !== undefined) c.tracer.serve(req, res);
    if (c.gate !== undefined && c.gate(req, res)) return;
    c.head.call(server, req, res);
  });
  return c;
}

/**
 * Puts `answer` in front of the server's request listeners. Routes installed one after the
 * other chain: the later one is asked first. The server's gate (gateAhead) stays in front of
 * them all.
 */
export function serveAhead(server: Server, answer: AheadAnswer): void {
  const c = chainOf(server);
  const next = c.head;
  c.head = (req, res) => {
    if (!answer(req, res)) next.call(server, req, res);
  };
}

/**
 * Puts `gate` in front of every route of the server, fastify's and those ahead of it, including
 * routes installed later (http-server.ts: the Host check). It answers a request it refuses and
 * returns true, else returns false having written nothing.
 */
export function gateAhead(server: Server, gate: AheadAnswer): void {
  chainOf(server).gate = gate;
}

/**
 * Gives every request of the server, fastify's and those answered ahead of it, a SERVER span
 * of `tracer` before anything else sees it (http-server.ts, with --otlp-endpoint).
 */
export function traceAhead(server: Server, tracer: Tracer): void {
  chainOf(server).tracer = tracer;
}

/**
 * The requests a route ahead of fastify has in hand, tied to fastify's close: from preClose
 * on `closing` is true (the route refuses new requests with 503 and asks clients to close),
 * and close waits in onClose until every request begun has ended — so a role that closes its
 * store after `app.close()` never closes it under one of them. A plain object and two
 * methods, no closure per request.
 */
export class InFlight {
  closing = false;
  private count = 0;
  private drained: (() => void) | undefined;

  /** Registers the hooks; call before the app is ready (fastify refuses hooks after). */
  constructor(app: FastifyInstance) {
    app.addHook('preClose', async () => {
      this.closing = true;
    });
    app.addHook('onClose', async () => {
      if (this.count > 0) await new Promise<void>((r) => (this.drained = r));
    });
  }

  begin(): void {
    this.count++;
  }

  end(): void {
    if (--this.count === 0 && this.drained !== undefined) this.drained();
  }
}
