// A servable response held in the caches: body plus headers computed once when the entry is
// made, so a cache hit only copies a small object and sends a Buffer. answer() applies the
// request's conditional and Range headers to an entry.
import { UgcfsError } from '../src/base/errors.ts';
import { keyHeaders } from './edge-purge-keys.ts';
import type { Sized } from './memory-cache.ts';

export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** Error answers may be cached briefly by CDNs, so a storm of bad URLs stays at the edge. */
export const ERROR_CACHE_CONTROL = 'public, max-age=10';

export interface CachedResponse extends Sized {
  body: Buffer;
  mime: string;
  etag: string;
  /** ms since the epoch (the original's upload time) */
  lastModified: number;
  negotiated: boolean;
  headers: Readonly<Record<string, string>>;
  /** name/value pairs of a plain 200 cache hit, Content-Length and X-Cache included */
  hitHeaders: readonly string[];
}

/**
 * `keys`: what CDN edges file the answer under (origin/edge-purge-keys.ts): the fid, or a
 * legacy path's key for bytes read through from an old origin. Laid out here once, so the
 * memory-hit path sends them at no cost.
 */
export function makeResponse(body: Buffer, o: { mime: string; etag: string; lastModified: number; negotiated: boolean; attachment: boolean; keys?: readonly string[] }): CachedResponse {
  const headers: Record<string, string> = {
    'content-type': o.mime,
    'cache-control': IMMUTABLE,
    etag: o.etag,
    'last-modified': new Date(o.lastModified).toUTCString(),
    'accept-ranges': 'bytes',
    'x-content-type-options': 'nosniff',
    // Even if a browser were talked into rendering these bytes as a document, it could
    // run nothing and load nothing.
    'content-security-policy': "default-src 'none'; sandbox",
  };
  if (o.negotiated) headers.vary = 'Accept';
  if (o.attachment) headers['content-disposition'] = 'attachment';
  if (o.keys !== undefined && o.keys.length > 0) Object.assign(headers, keyHeaders(o.keys));
  const hitHeaders = Object.entries({ ...headers, 'content-length': String(body.length), 'x-cache': 'HIT' }).flat();
  return { body, mime: o.mime, etag: o.etag, lastModified: o.lastModified, negotiated: o.negotiated, headers, hitHeaders, bytes: body.length + 1024 };
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  /** undefined for 304 */
  body: Buffer | undefined;
}

type HeaderValue = string | string[] | undefined;
export interface RequestHeaders {
  'if-none-match'?: HeaderValue;
  'if-modified-since'?: HeaderValue;
  range?: HeaderValue;
  'if-range'?: HeaderValue;
}

function one(h: HeaderValue): string | undefined {
  return Array.isArray(h) ? h[0] : h;
}

function etagMatches(header: string, etag: string): boolean {
  if (header.trim() === '*') return true;
  // Weak comparison, as RFC 9110 prescribes for If-None-Match.
  const bare = etag.replace(/^W\//, '');
  for (const t of header.split(',')) if (t.trim().replace(/^W\//, '') === bare) return true;
  return false;
}

function notModified(entry: CachedResponse, req: RequestHeaders): boolean {
  const inm = one(req['if-none-match']);
  if (inm !== undefined) return etagMatches(inm, entry.etag);
  const ims = one(req['if-modified-since']);
  if (ims !== undefined) {
    const since = Date.parse(ims);
    return Number.isFinite(since) && Math.floor(entry.lastModified / 1000) * 1000 <= since;
  }
  return false;
}

/** Parses a single `bytes=` range; undefined means "ignore Range and send it all". */
function range(header: string, size: number): [number, number] | undefined {
  const h = header.trim();
  if (!h.toLowerCase().startsWith('bytes=')) return undefined; // other units: ignore
  const spec = h.slice(6).trim();
  if (spec.includes(',')) return undefined; // multipart ranges: send the whole body
  const m = /^(\d*)-(\d*)$/.exec(spec);
  const unsatisfiable = () => new UgcfsError('UGCFS_ERR_RANGE_NOT_SATISFIABLE', `range ${JSON.stringify(spec.slice(0, 40))} does not fit ${size} bytes`, { headers: { 'content-range': `bytes */${size}` } });
  if (!m || (m[1] === '' && m[2] === '')) throw unsatisfiable();
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw unsatisfiable();
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) throw unsatisfiable();
  }
  if (start >= size || size === 0) throw unsatisfiable();
  return [start, end];
}

export function answer(entry: CachedResponse, req: RequestHeaders, xCache: 'HIT' | 'MISS'): Answer {
  const headers: Record<string, string> = { ...entry.headers, 'x-cache': xCache };
  if (notModified(entry, req)) {
    delete headers['content-type'];
    return { status: 304, headers, body: undefined };
  }
  const r = one(req.range);
  if (r !== undefined) {
    const ifRange = one(req['if-range']);
    if (ifRange === undefined || ifRange.trim() === entry.etag) {
      const span = range(r, entry.body.length);
      if (span) {
        headers['content-range'] = `bytes ${span[0]}-${span[1]}/${entry.body.length}`;
        return { status: 206, headers, body: entry.body.subarray(span[0], span[1] + 1) };
      }
    }
  }
  return { status: 200, headers, body: entry.body };
}
