// Fetching one file from an old HTTP origin, with the limits uploads have: a byte cap
// enforced while streaming (a lying or missing Content-Length changes nothing), a timeout
// for headers and for the body, and no redirects followed (an old origin that redirects
// elsewhere would let it choose what we store). Used by origin read-through and by
// `ugcfs migrate --from-url`.
import { request } from 'undici';
import { UgcfsError } from '../src/base/errors.ts';
import { httpAgent, networkError } from '../src/clients/http-client.ts';
import { encodeLegacyPath } from '../src/wire/legacy-path.ts';

export interface LegacyFetchOptions {
  timeoutMs: number;
  maxBytes: number;
  /** conditional GET: validators saved from an earlier fetch */
  etag?: string;
  lastModified?: string;
  signal?: AbortSignal;
}

export type LegacyFetchResult =
  | { status: 'ok'; data: Buffer; etag?: string; lastModified?: string }
  | { status: 'not-modified' }
  | { status: 'not-found'; httpStatus: number };

/** The URL of a canonical legacy path on an old origin whose base is `base` (no trailing slash). */
export function legacyUrl(base: string, path: string): string {
  return base.replace(/\/+$/, '') + encodeLegacyPath(path);
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

export async function fetchLegacy(base: string, path: string, opts: LegacyFetchOptions): Promise<LegacyFetchResult> {
  const url = legacyUrl(base, path);
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (opts.etag) headers['if-none-match'] = opts.etag;
  if (opts.lastModified) headers['if-modified-since'] = opts.lastModified;
  // One deadline for the whole exchange: undici's timeouts are per idle gap, so a peer
  // trickling one byte a second would otherwise never time out.
  const deadline = AbortSignal.timeout(opts.timeoutMs);
  const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
  let res: Awaited<ReturnType<typeof request>>;
  try {
    res = await request(url, { method: 'GET', headers, dispatcher: httpAgent, signal, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
  } catch (err) {
    throw deadline.aborted ? timeout(url) : networkError(url, err);
  }
  const { statusCode: status } = res;
  try {
    if (status === 304 && (opts.etag || opts.lastModified)) return { status: 'not-modified' };
    if (status === 404 || status === 410) return { status: 'not-found', httpStatus: status };
    if (status !== 200) throw new UgcfsError('UGCFS_ERR_UPSTREAM', `old origin answered HTTP ${status} for ${path}`);
    const declared = Number(header(res.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > opts.maxBytes) throw tooLarge(opts.maxBytes);
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      if (total > opts.maxBytes) throw tooLarge(opts.maxBytes);
      chunks.push(chunk as Buffer);
    }
    const etag = header(res.headers, 'etag');
    const lastModified = header(res.headers, 'last-modified');
    return { status: 'ok', data: Buffer.concat(chunks, total), ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
  } catch (err) {
    if (err instanceof UgcfsError) throw err;
    throw deadline.aborted ? timeout(url) : networkError(url, err);
  } finally {
    // Drop whatever is left unread so the connection is not left hanging on a refused body;
    // the abort this raises on the stream is expected, not an error to crash on.
    if (!res.body.readableEnded) {
      res.body.on('error', () => undefined);
      res.body.destroy();
    }
  }
}

function tooLarge(max: number): UgcfsError {
  return new UgcfsError('UGCFS_ERR_TOO_LARGE', `old origin file is larger than ${max} bytes`);
}

function timeout(url: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_TIMEOUT', `old origin ${new URL(url).origin} timed out`);
}
