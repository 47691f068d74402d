// The fastify scaffolding every ugcfs server shares: request ids, the one error renderer,
// /healthz and /metrics, the credential rules of internal and file routes,
// graceful shutdown, and what every request passes before its body is read — the Host
// check, routing, the route's declared credential and body limit — with the server's
// timeouts and connection cap (request-gate.ts). HTTPS with --tls-cert and --tls-key.
// With --otlp-endpoint, a span per request (src/base/trace.ts, begun in ahead-route.ts).
import type { Server } from 'node:http';
import { Server as TlsServer } from 'node:tls';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { UgcfsError } from '../base/errors.ts';
import { createMetrics, type Metrics, type Registry } from '../base/metrics.ts';
import type { Logger } from '../base/log.ts';
import { credentialOf, CredentialRule } from '../base/secret.ts';
import { createAccessLog, type AccessLog } from './access-log.ts';
import { REQUEST_LIMIT_OPTIONS, type TRACE_OPTIONS } from '../base/role-options.ts';
import type { ConfigOf } from '../base/config.ts';
import { createTracer, nameServerSpan, spanOfRequest } from '../base/trace.ts';
import { readServerTls } from '../base/tls-files.ts';
import { answerError, errorAnswer, gateAhead, logFailure, requestId, RouteMeter, toUgcfsError, traceAhead } from './ahead-route.ts';
import { AllowedHosts, closesUnreadBody, DEFAULT_BODY_LIMIT, routeGate, serverLimits, type AuthCheck, type ServerLimits } from './request-gate.ts';
import { requestLogger } from './request-logger.ts';

export { toUgcfsError };

export interface ServerBase {
  app: FastifyInstance;
  metrics: Metrics;
  registry: Registry;
  log: Logger;
  /** run before each /metrics scrape, so gauges that are costly to keep live are current when read */
  onScrape(hook: () => void): void;
  /** the access-log writer (undefined unless --access-log); routes served ahead of fastify call it too */
  access: AccessLog | undefined;
  /** this server's metrics as prom-client JSON, scrape hooks run first (what a pool sibling aggregates) */
  metricsJson(): Promise<unknown[]>;
}

export interface HttpServerOptions {
  role: string;
  log: Logger;
  /** request body limit of routes that declare none (default 64 KiB); routes that take more declare their bodyLimit */
  bodyLimit?: number;
  /** error responses get this short max-age (origin); internal servers send no-store */
  errorCacheControl?: string;
  defaultMetrics?: boolean;
  /** the cluster secret: what routes of auth kind 'internal' ask for (none configured: every such request is refused) */
  clusterSecret?: string;
  /** the origins' credential (--origin-secret): routes of auth kind 'file' take it besides the cluster secret */
  originSecret?: string;
  /** auth kinds routes may declare besides 'public' and 'internal' (e.g. 'admin'), each with its check */
  auth?: Record<string, AuthCheck>;
  /**
   * the role's config (COMMON_SERVER_OPTIONS): timeouts, connection cap and --allowed-hosts,
   * and --otlp-endpoint with its sample ratio (tracing); defaults for what is absent
   */
  limits?: Partial<ServerLimits & ConfigOf<typeof TRACE_OPTIONS>>;
  /** the address the server listens on (--host), a name it answers */
  listenHost?: string;
  /** the server's own public or advertised URLs ('' ignored), names it answers */
  ownUrls?: readonly string[];
  /** health detail for /healthz */
  health?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** one log line per answered request (--access-log) */
  accessLog?: boolean;
  /** what /metrics answers instead of this server's own registry (an origin worker pool's aggregate) */
  metricsText?: () => Promise<string>;
  /** --tls-cert and --tls-key (the role's config): both set, the server speaks HTTPS only */
  tls?: { tlsCert: string; tlsKey: string };
}

export function createHttpServer(opts: HttpServerOptions): ServerBase {
  const { registry, metrics } = createMetrics(opts.role, { defaultMetrics: opts.defaultMetrics });
  const access = createAccessLog(opts.log, opts.accessLog ?? false);
  const limits: ServerLimits = { ...defaultLimits(), ...opts.limits };
  const bodyLimit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const tls = opts.tls ? readServerTls(opts.tls) : undefined;
  const serverOptions = serverLimits(limits);
  const app = Fastify({
    ...serverOptions,
    // fastify gives https.createServer its `https` options alone, not `http`: the timeouts go
    // in them too, and a TLS handshake gets no longer than the headers would.
    ...(tls ? { https: { ...serverOptions.http, handshakeTimeout: serverOptions.http.headersTimeout, ...tls } } : {}),
    loggerInstance: opts.log as unknown as FastifyBaseLogger,
    // Access logging is ours (request id on every line), not fastify's per-request pair.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: requestLogger,
    bodyLimit,
    // the rule the routes served ahead of fastify apply too (ahead-route.ts)
    genReqId: (req) => requestId(req.headers),
    requestIdHeader: false,
    routerOptions: { maxParamLength: 2048 },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  // Raw bodies of any type arrive as Buffers; routes that stream register their own parser.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'request body is not valid JSON'), undefined);
    }
  });
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const server = app.server as Server;
  server.maxConnections = limits.maxConnections;
  // The Host check, ahead of every route: fastify's, and those answered from node:http.
  const hosts = new AllowedHosts({ listenHost: opts.listenHost, urls: (opts.ownUrls ?? []).filter(Boolean), allowed: limits.allowedHosts });
  const hostMeter = new RouteMeter(metrics, 'host-gate', access);
  let closing = false;
  const tracer = createTracer({ endpoint: opts.limits?.otlpEndpoint ?? '', sampleRatio: opts.limits?.otlpSampleRatio ?? 1, role: opts.role, log: opts.log });
  if (tracer !== undefined) {
    traceAhead(server, tracer);
    // on close, the spans still queued go out (a few seconds at most)
    app.addHook('onClose', async () => tracer.close());
  }
  gateAhead(server, (req, res) => {
    const host = req.headers.host;
    if (hosts.allows(host)) return false;
    const started = performance.now();
    const rid = requestId(req.headers);
    const status = answerError(res, hosts.refusal(host), opts.log, rid, closing);
    hostMeter.done(req.method ?? '', req.url ?? '', status, started, undefined, rid);
    return true;
  });

  // Every route declares who may call it and how big a body it takes (request-gate.ts):
  // checked in onRequest, before fastify reads a byte of the body.
  const rules = roleRules(opts.clusterSecret ?? '', opts.originSecret ?? '');
  const checks = new Map<string, AuthCheck | undefined>([
    ['public', undefined],
    ['internal', (req) => rules.internal.check(credentialOf(req.headers))],
    ['file', (req) => rules.file.check(credentialOf(req.headers))],
    ...Object.entries(opts.auth ?? {}),
  ]);
  app.addHook('onRoute', routeGate(checks, bodyLimit));

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    (req as FastifyRequest & { startedAt?: number }).startedAt = performance.now();
    // An unrouted request is answered before anything reads its body.
    if (req.is404) throw new UgcfsError('UGCFS_ERR_ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.slice(0, 200)}`);
  });
  // One meter per route, its labelled children bound once: prom-client resolving label
  // values on every request showed in profiles of the replicated write path.
  const meters = new Map<string, RouteMeter>();
  app.addHook('onResponse', async (req, reply) => {
    const started = (req as FastifyRequest & { startedAt?: number }).startedAt;
    const route = req.routeOptions.url ?? 'unmatched';
    if (tracer !== undefined) {
      const span = spanOfRequest(req.raw);
      if (span !== undefined) nameServerSpan(span, req.method, route, req.id);
    }
    if (started === undefined) {
      metrics.httpRequests.inc({ route, method: req.method, status: String(reply.statusCode) });
    } else {
      let meter = meters.get(route);
      if (!meter) meters.set(route, (meter = new RouteMeter(metrics, route, access)));
      const length = access === undefined ? undefined : reply.getHeader('content-length');
      meter.done(req.method, req.url, reply.statusCode, started, length === undefined ? undefined : Number(length), req.id);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const e = toUgcfsError(err);
    logFailure(req.log, err, e); // req.log carries the request id
    sendError(reply, e, opts.errorCacheControl);
  });
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, new UgcfsError('UGCFS_ERR_ROUTE_NOT_FOUND', `no route for ${req.method} ${req.url.slice(0, 200)}`), opts.errorCacheControl);
  });

  // Graceful close: a keep-alive connection that was busy when close() began would otherwise
  // stay open until the keep-alive timeout (72 s), holding close() — and SIGTERM — longer than
  // orchestrators wait. While closing, responses ask the client to close and idle sockets
  // (including ones answered outside fastify, e.g. the origin's hit path) are reaped.
  let reaper: NodeJS.Timeout | undefined;
  app.addHook('preClose', async () => {
    closing = true;
    reaper = setInterval(() => app.server.closeIdleConnections(), 50);
    reaper.unref();
  });
  app.addHook('onClose', async () => clearInterval(reaper));
  // An answer sent before its request's body was read (a refusal) drains a small body and
  // closes the connection on a big one (request-gate.ts REFUSED_BODY_DRAIN).
  app.addHook('onSend', async (req, reply, payload) => {
    if (closing || closesUnreadBody(req.raw, reply.statusCode)) reply.header('connection', 'close');
    return payload;
  });

  app.get('/healthz', PUBLIC, async () => ({ ok: true, role: opts.role, ...(opts.health ? await opts.health() : {}) }));
  const scrapeHooks: Array<() => void> = [];
  const scraped = () => {
    for (const hook of scrapeHooks) hook();
    return registry;
  };
  app.get('/metrics', PUBLIC, async (_req, reply) => {
    reply.header('content-type', registry.contentType);
    return opts.metricsText ? opts.metricsText() : scraped().metrics();
  });
  const metricsJson = async () => scraped().getMetricsAsJSON();

  return { app, metrics, registry, log: opts.log, onScrape: (hook) => scrapeHooks.push(hook), access, metricsJson };
}

const PUBLIC = { config: { auth: 'public' } };

function defaultLimits(): ServerLimits {
  const d = REQUEST_LIMIT_OPTIONS;
  return {
    requestTimeoutMs: d.requestTimeoutMs.default,
    headersTimeoutMs: d.headersTimeoutMs.default,
    keepAliveTimeoutMs: d.keepAliveTimeoutMs.default,
    maxConnections: d.maxConnections.default,
    maxRequestsPerSocket: d.maxRequestsPerSocket.default,
    allowedHosts: d.allowedHosts.default,
  };
}

/** fastify's side of the one error renderer (ahead-route.ts errorAnswer); x-request-id comes from onRequest. */
export function sendError(reply: FastifyReply, e: UgcfsError, cacheControl = 'no-store'): void {
  const a = errorAnswer(e, cacheControl);
  reply.code(a.status).headers(a.headers).send(a.body);
}

/**
 * The two route kinds every server knows: 'internal' takes the cluster secret only; 'file'
 * (reading, writing and deleting files) takes the origins' credential too. Either presented
 * where it does not reach is 403, not 401.
 */
export interface RoleRules {
  internal: CredentialRule;
  file: CredentialRule;
}

export function roleRules(clusterSecret: string, originSecret: string): RoleRules {
  return {
    internal: new CredentialRule([clusterSecret], [originSecret]),
    file: new CredentialRule([clusterSecret, originSecret]),
  };
}

/** Listens; the URL answered is http:// or, when the server has a certificate, https://. */
export async function listen(app: FastifyInstance, host: string, port: number): Promise<string> {
  await app.listen({ host, port });
  const addr = app.server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  return listenUrl(host, actualPort, app.server instanceof TlsServer);
}

/** The URL a server listening on host:port is reached at (a wildcard host: loopback). */
export function listenUrl(host: string, port: number, tls: boolean): string {
  const h = host.includes(':') ? `[${host}]` : host;
  return `${tls ? 'https' : 'http'}://${h === '0.0.0.0' || h === '[::]' ? '127.0.0.1' : h}:${port}`;
}

/**
 * On SIGTERM/SIGINT: run the closers (stop accepting, drain, close LevelDB) once, then exit 0.
 * A second signal exits 1 at once.
 * Returns the same graceful stop for other callers (an origin worker told to stop by its
 * pool's primary), which does nothing when a stop is already under way.
 */
export function onShutdown(log: Logger, closers: Array<() => Promise<void>>): () => void {
  let closing = false;
  const stop = (sig: string) => {
    closing = true;
    log.info({ sig }, 'shutting down');
    (async () => {
      for (const c of closers) {
        try {
          await c();
        } catch (err) {
          log.error({ err }, 'error during shutdown');
        }
      }
      log.flush?.();
      // A server that asked for its own stop after a fatal fault set the exit code: keep it.
      process.exit(process.exitCode ?? 0);
    })();
  };
  const handler = (sig: string) => {
    if (closing) process.exit(1);
    stop(sig);
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
  return () => {
    if (!closing) stop('pool');
  };
}
