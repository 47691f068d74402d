// What every call to a data server is built from, declared once: the URL of a route
// (DS_ROUTES filled in), the timeout of each kind of call, the headers of a needle PUT,
// and a needle answer's metadata headers read back. dataserver-client.ts makes the calls.
import { UgcfsError, isErrorCode } from '../base/errors.ts';
import { expectOk, type RawResponse } from './http-client.ts';
import { DS_ROUTES, HEADERS } from '../wire/protocol.ts';
import { SECRET_HEADER } from '../base/secret.ts';

export type DsRoute = keyof typeof DS_ROUTES;

/** The parameters of DS_ROUTES: `:id` a block id, `:fid` a file id text, `:name` a quarantined file. */
export interface DsRouteParams {
  id?: number;
  fid?: string;
  name?: string;
}

/** The one place a data-server URL is made: `base` (no trailing slash) + the route, filled in. */
export function dsUrl(base: string, route: DsRoute, p: DsRouteParams = {}, query?: Record<string, string | number>): string {
  let path: string = DS_ROUTES[route];
  // fids are URL-safe by construction (docs/FILE-ID.md), block ids decimal
  if (p.id !== undefined) path = path.replace(':id', String(p.id));
  if (p.fid !== undefined) path = path.replace(':fid', p.fid);
  if (p.name !== undefined) path = path.replace(':name', encodeURIComponent(p.name));
  if (query) {
    const q = Object.entries(query).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`);
    if (q.length > 0) path += `?${q.join('&')}`;
  }
  return base + path;
}

/**
 * How long each kind of data-server call may take, ms. A client built with a `timeoutMs`
 * (a cluster client's --timeout-ms) uses it for `needle` and `batch`; any call may pass its own.
 */
export const DS_TIMEOUTS = {
  /** a needle PUT, GET, HEAD or DELETE: a client's, or a primary forwarding to a replica */
  needle: 10_000,
  /** a needle batch (several writes to one block) */
  batch: 10_000,
  /** a missed delete replayed by the name server (many in a row: a hung server must not hold the loop) */
  deleteReplay: 5000,
  /** verify --repair tombstoning one record on one copy */
  repairDelete: 30_000,
  /** verify --repair reading one record from a good copy, or writing it to a copy lacking it */
  repairCopy: 60_000,
  /** creating an empty block on a replica */
  blockCreate: 5000,
  /** a block's report (GET /blocks/:id, /blocks) */
  blockReport: 10_000,
  /** turning a copy read-only (or writable again) */
  readonly: 5000,
  /** removing a copy */
  blockDelete: 30_000,
  /** a whole block pulled from a peer (repair and moves pass their --copy timeout) */
  pull: 600_000,
  /** one round of a pull's GET /blocks/:id/data (headers, and then each chunk of the body) */
  blockData: 60_000,
  /** reading a whole copy to check every record's CRC */
  scrub: 600_000,
  /** reading a whole copy to list its keys */
  keys: 600_000,
  /** rewriting a copy without its deleted records */
  compact: 30 * 60_000,
  /** the quarantine listing and removals */
  quarantine: 10_000,
} as const;

export type DsCallKind = keyof typeof DS_TIMEOUTS;
export type DsTimeouts = Record<DsCallKind, number>;

/** What a needle PUT carries besides its bytes. */
export interface NeedlePutMeta {
  mime: string;
  owner: string;
  /** ms; absent: the primary sets it (a forwarded or repair copy carries the primary's) */
  uploadTime?: number;
  /** CRC32-C of the body: the receiver refuses bytes damaged on the way */
  crc?: number;
  /** peer base URLs the primary forwards to (absent on forwarded writes) */
  replicas?: readonly string[];
  /** verify --repair: this copy only, lands on a sealed block, never over an existing key */
  repair?: boolean;
  /** the request id the receiver logs under (a primary forwards its own) */
  requestId?: string;
}

/** The headers of a needle PUT, built in this one place. */
export function needlePutHeaders(m: NeedlePutMeta, secret: string): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    [HEADERS.mime]: m.mime,
    [HEADERS.owner]: m.owner,
  };
  if (m.uploadTime !== undefined) headers[HEADERS.uploadTime] = String(m.uploadTime);
  if (m.crc !== undefined) headers[HEADERS.crc] = String(m.crc);
  if (m.replicas !== undefined && m.replicas.length > 0) headers[HEADERS.replicas] = m.replicas.join(',');
  if (m.repair) headers[HEADERS.repair] = '1';
  // The replicas log under the primary's request id, so one write reads as one story.
  if (m.requestId !== undefined) headers['x-request-id'] = m.requestId;
  if (secret) headers[SECRET_HEADER] = secret;
  return headers;
}

/** A stored file's metadata, from a needle GET or HEAD answer. */
export interface NeedleHead {
  fid: string;
  size: number;
  mime: string;
  owner: string;
  /** ms since the epoch */
  uploadTime: number;
  crc: number;
}

export function header(h: RawResponse['headers'], name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

export function parseNeedleHead(fid: string, h: RawResponse['headers'], bodyLength: number | undefined): NeedleHead {
  const len = Number(header(h, 'content-length'));
  return {
    fid,
    size: bodyLength ?? (Number.isFinite(len) ? len : 0),
    mime: header(h, HEADERS.mime) ?? header(h, 'content-type') ?? 'application/octet-stream',
    owner: header(h, HEADERS.owner) ?? '',
    uploadTime: Number(header(h, HEADERS.uploadTime) ?? 0) || 0,
    crc: Number(header(h, HEADERS.crc) ?? 0) >>> 0,
  };
}

/**
 * expectOk for needle reads: a HEAD answer has no body, so its error code comes from a
 * header; without it a replica lacking the block would look like a final "no such file".
 */
export function needleOk(res: RawResponse): RawResponse {
  if (res.status >= 200 && res.status < 300) return res;
  const code = header(res.headers, HEADERS.errorCode);
  if (res.body.length === 0 && isErrorCode(code)) throw new UgcfsError(code);
  return expectOk(res);
}
