// The lean path for the request a CDN origin answers most: GET/HEAD of a fid or variant that
// is already in the memory tier. It runs in the server's request listener before fastify
// and answers synchronously from the cached entry's precomputed headers; anything else
// (a miss, a legacy path, a negotiated format, an error) falls through to the full routes,
// which produce the same answer more slowly. Request ids, metrics and the access log are the
// routes' own (src/http/ahead-route.ts).
import type { AccessLog } from '../src/http/access-log.ts';
import { requestId, RouteMeter, serveAhead } from '../src/http/ahead-route.ts';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Metrics } from '../src/base/metrics.ts';
import { answer } from './cached-response.ts';
import { OriginCore } from './origin-core.ts';
import { parseTarget, resolveVariant, type ResolveOptions } from './variant-url.ts';

interface Target {
  fid: string;
  /** the entry's key in the memory tier */
  memoryKey: string;
  kind: 'original' | 'variant';
  /** the purge record's generation when this URL was last noted there (--purge-edges) */
  noted?: number;
}

export interface HitPathDeps {
  core: OriginCore;
  metrics: Metrics;
  /** signed URLs are verified by the full route only */
  signed: boolean;
  resolve: Omit<ResolveOptions, 'accept'>;
  /** the server's --access-log writer; undefined when off */
  access?: AccessLog;
  /** --purge-edges/--purge-webhook: each URL served is noted for the edges' purge */
  purge?: { served(fid: string, url: string): void; readonly generation: number };
}

/** URLs the memo holds; with MEMO_URL_CHARS it bounds the memo to a few MB. */
export const MEMO_LIMIT = 10_000;
/** Longer URLs are parsed every time: real fid URLs are far shorter, junk may be 4 KiB. */
export const MEMO_URL_CHARS = 256;

/** The request target as sent, when the listener had to re-escape it for the router. */
const SENT_URL = Symbol('ugcfs.sentUrl');

/**
 * fastify's router refuses paths whose escapes do not decode (`100%.jpg`, overlong UTF-8)
 * with its own error body. Legacy URLs may legitimately hold a bare `%`, and bad ones
 * deserve our BAD_PATH answer, so such a path is re-escaped for routing and the original
 * kept for requestTarget(), whose parser applies the legacy-path rules to it.
 */
function shieldFromRouter(req: IncomingMessage): void {
  const url = req.url ?? '/';
  if (!url.includes('%')) return;
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  try {
    decodeURIComponent(path);
  } catch {
    (req as IncomingMessage & { [SENT_URL]?: string })[SENT_URL] = url;
    req.url = path.replace(/%/g, '%25') + (q < 0 ? '' : url.slice(q));
  }
}

/** The URL the client sent (path and query), for the origin's own parser. */
export function requestTarget(req: { url: string; raw: IncomingMessage }): string {
  return (req.raw as IncomingMessage & { [SENT_URL]?: string })[SENT_URL] ?? req.url;
}

export interface HitPath {
  /** URLs memoised now (healthz `hitPathMemo`) */
  memoSize(): number;
}

export function installHitPath(server: Server, d: HitPathDeps): HitPath {
  // URL -> what it names (null: a valid URL the routes answer, e.g. a signed variant), for
  // short URLs that parse only: junk, invalid and over-long URLs are never kept, so a
  // flood of them costs the memo nothing.
  const memo = new Map<string, Target | null>();
  // the label of the routes' catch-all (read-routes.ts), which answers the same URLs
  const meter = new RouteMeter(d.metrics, '/*', d.access);
  const memoryHit = d.metrics.cacheLookups.labels({ tier: 'memory', result: 'hit' });
  const bytesServed = { original: d.metrics.bytesServed.labels({ kind: 'original' }), variant: d.metrics.bytesServed.labels({ kind: 'variant' }) };

  function targetOf(url: string): Target | null {
    const known = memo.get(url);
    if (known !== undefined) return known;
    if (url.length > MEMO_URL_CHARS) return null; // parsed by the routes, which refuse what is too long
    let t: Target | null = null;
    let valid = false;
    try {
      const p = parseTarget(url);
      if (p.kind === 'fid') {
        if (p.spec === undefined) t = { fid: p.id, memoryKey: OriginCore.memoryKey(p.id, undefined), kind: 'original' };
        else if (!d.signed) {
          const v = resolveVariant(p.spec, { ...d.resolve, accept: undefined });
          if (!v.negotiated) t = { fid: p.id, memoryKey: OriginCore.memoryKey(p.id, v.key), kind: 'variant' };
        }
        valid = true;
      }
    } catch {
      return null;
    }
    if (!valid) return null;
    // Oldest first: Map order is insertion order.
    if (memo.size >= MEMO_LIMIT) memo.delete(memo.keys().next().value!);
    memo.set(url, t);
    return t;
  }

  function tryHit(req: IncomingMessage, res: ServerResponse): boolean {
    const method = req.method;
    const url = req.url;
    if ((method !== 'GET' && method !== 'HEAD') || url === undefined || url.charCodeAt(1) !== 0x31 /* '1': fids only */) return false;
    const started = performance.now();
    const t = targetOf(url);
    if (t === null) return false;
    const entry = d.core.peek(t.fid, t.memoryKey);
    if (entry === undefined) return false;
    const id = requestId(req.headers);
    // Noted once per URL while nothing was forgotten since: one compare on later hits. A
    // tombstoned fid never gets here (peek), so no delete can be under way for it.
    if (d.purge !== undefined && t.noted !== d.purge.generation) {
      d.purge.served(t.fid, url);
      t.noted = d.purge.generation;
    }
    const h = req.headers;
    if (h['if-none-match'] === undefined && h['if-modified-since'] === undefined && h.range === undefined) {
      // The common case: a plain 200 with headers laid out when the entry was made.
      memoryHit.inc();
      res.writeHead(200, [...entry.hitHeaders, 'x-request-id', id]);
      if (method === 'HEAD') res.end();
      else { res.end(entry.body); bytesServed[t.kind].inc(entry.body.length); }
      meter.done(method, url, 200, started, entry.body.length, id);
      return true;
    }
    let a;
    try {
      a = answer(entry, h, 'HIT');
    } catch {
      return false; // e.g. an unsatisfiable Range: the routes render the error
    }
    memoryHit.inc();
    a.headers['x-request-id'] = id;
    if (a.body !== undefined) {
      a.headers['content-length'] = String(a.body.length);
      if (method === 'GET') bytesServed[t.kind].inc(a.body.length);
    }
    res.writeHead(a.status, a.headers);
    if (method === 'HEAD' || a.body === undefined) res.end();
    else res.end(a.body);
    meter.done(method, url, a.status, started, a.body?.length, id);
    return true;
  }

  serveAhead(server, (req, res) => {
    if (tryHit(req, res)) return true;
    shieldFromRouter(req);
    return false;
  });
  return { memoSize: () => memo.size };
}
