// The hot read route, GET|HEAD /needles/<fid>, answered straight from node:http ahead of
// fastify. Profiles showed the framework's per-request work (routing, hooks, child loggers,
// reply pipeline) costing about as much CPU as the read itself; this path keeps everything
// that matters — the cluster secret, the stable error body, request metrics, one index
// lookup and one pread — and hands every other request to fastify unchanged.
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { UgcfsError, isUgcfsError } from '../src/errors.ts';
import { decodeFid } from '../src/file-id.ts';
import type { Logger } from '../src/log.ts';
import type { Metrics } from '../src/metrics.ts';
import { DS_ROUTES, HEADERS } from '../src/protocol.ts';
import { SECRET_HEADER, bearer, secretEquals } from '../src/secret.ts';
import type { BlockStore } from './block-store.ts';

const PREFIX = '/needles/';
const ROUTE = DS_ROUTES.needle;

export interface ReadRouteContext {
  store: BlockStore;
  secret: string;
  metrics: Metrics;
  log: Logger;
}

export interface ReadRoute {
  /** answer 503 from now on (shutdown has begun); resolves when reads in flight are done */
  stop(): Promise<void>;
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/** Puts the read route in front of fastify's request listener. */
export function installNeedleReadRoute(app: FastifyInstance, ctx: ReadRouteContext): ReadRoute {
  const server = app.server as Server;
  const fastifyListeners = server.listeners('request') as Listener[];
  let stopped = false;
  if (fastifyListeners.length !== 1) {
    // Not the shape we expect: leave fastify alone (its own GET route serves reads).
    ctx.log.warn('fast read route not installed: unexpected request listeners');
    return { stop: async () => {} };
  }
  const fallback = fastifyListeners[0]!;
  const record = recorder(ctx.metrics);
  // fastify tracks its own requests for graceful close; these it never sees, so count them.
  let inFlight = 0;
  let drained: (() => void) | undefined;
  server.removeListener('request', fallback);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    const method = req.method;
    if ((method !== 'GET' && method !== 'HEAD') || !url.startsWith(PREFIX) || url.indexOf('/', PREFIX.length) >= 0 || url.indexOf('?') >= 0) {
      fallback.call(server, req, res);
      return;
    }
    inFlight++;
    void serve(ctx, record, req, res, url.slice(PREFIX.length), method === 'HEAD', stopped).finally(() => {
      if (--inFlight === 0) drained?.();
    });
  });
  return {
    async stop() {
      stopped = true;
      if (inFlight > 0) await new Promise<void>((r) => (drained = r));
    },
  };
}

async function serve(ctx: ReadRouteContext, record: Recorder, req: IncomingMessage, res: ServerResponse, fidText: string, head: boolean, stopped: boolean): Promise<void> {
  const started = process.hrtime.bigint();
  const method = head ? 'HEAD' : 'GET';
  try {
    if (stopped) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'data server is shutting down');
    if (ctx.secret !== '') {
      const given = (req.headers[SECRET_HEADER] as string | undefined) ?? bearer(req.headers.authorization);
      if (!secretEquals(given, ctx.secret)) throw new UgcfsError('UGCFS_ERR_UNAUTHORIZED', 'cluster secret missing or wrong');
    }
    const fid = decodeFid(decodeURIComponentSafe(fidText));
    const n = await ctx.store.read(fid.block, fid.key, fid.cookie);
    const headers: Record<string, string | number> = {
      'content-type': n.mime || 'application/octet-stream',
      'content-length': n.data.length,
      [HEADERS.crc]: n.dataCrc,
      [HEADERS.uploadTime]: n.uploadTime,
      'cache-control': 'no-store',
    };
    if (n.owner) headers[HEADERS.owner] = n.owner;
    const rid = req.headers['x-request-id'];
    if (typeof rid === 'string' && /^[\w.-]{1,64}$/.test(rid)) headers['x-request-id'] = rid;
    res.writeHead(200, headers);
    if (head) res.end();
    else res.end(n.data);
    record(method, 200, started);
  } catch (err) {
    const e = isUgcfsError(err) ? err : new UgcfsError('UGCFS_ERR_INTERNAL', 'internal error', { cause: err });
    if (e.status >= 500) ctx.log.error({ err, code: e.code }, 'read failed');
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
    record(method, e.status, started);
  }
}

type Recorder = (method: string, status: number, started: bigint) => void;

/**
 * Request metrics with their labelled children bound once per (method, status): resolving
 * label values on every request is a measurable share of a read's CPU.
 */
function recorder(metrics: Metrics): Recorder {
  const bound = new Map<string, { requests: { inc(): void }; duration: { observe(v: number): void } }>();
  return (method, status, started) => {
    const key = `${method} ${status}`;
    let m = bound.get(key);
    if (!m) {
      m = {
        requests: metrics.httpRequests.labels({ route: ROUTE, method, status: String(status) }),
        duration: metrics.httpDuration.labels({ route: ROUTE, method }),
      };
      bound.set(key, m);
    }
    m.requests.inc();
    m.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  };
}

function decodeURIComponentSafe(s: string): string {
  if (s.indexOf('%') < 0) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    throw new UgcfsError('UGCFS_ERR_BAD_FID', 'malformed file id: bad percent-encoding');
  }
}
