// The one catalogue of ugcfs error codes. Codes are stable: a code never changes meaning,
// and callers branch on `err.code`, never on the message. docs/ERRORS.md is generated
// from this table by `npm run docs:errors` (deploy/errors-reference.ts) and checked by
// test/errors.test.ts.

export interface ErrorSpec {
  readonly status: number;
  readonly description: string;
}

export const ERRORS = {
  // request shape
  UGCFS_ERR_BAD_REQUEST: { status: 400, description: 'The request is malformed (bad JSON, missing field, bad header).' },
  UGCFS_ERR_BAD_FID: { status: 400, description: 'The file id is not a well-formed ugcfs file id.' },
  UGCFS_ERR_BAD_PARAM: { status: 400, description: 'A query parameter or URL suffix is unknown or out of range.' },
  UGCFS_ERR_BAD_PATH: { status: 400, description: 'The path is too long, not normalisable, or tries to escape its root.' },
  UGCFS_ERR_BAD_MULTIPART: { status: 400, description: 'The multipart body is malformed or has no `file` field.' },
  UGCFS_ERR_EMPTY_BODY: { status: 400, description: 'The upload has no bytes.' },
  UGCFS_ERR_BAD_USAGE: { status: 400, description: 'A command-line flag or config option is invalid (CLI exit code 2).' },
  // auth
  UGCFS_ERR_UNAUTHORIZED: { status: 401, description: 'A token or the cluster secret is missing or wrong.' },
  UGCFS_ERR_FORBIDDEN: { status: 403, description: 'The caller is authenticated but may not do this (e.g. delete another seller\'s file).' },
  UGCFS_ERR_BAD_SIGNATURE: { status: 403, description: 'A signed variant URL has a missing, wrong or expired signature.' },
  UGCFS_ERR_NOT_ALLOWED: { status: 403, description: 'Strict mode: this variant is not a preset or whitelisted size.' },
  // lookup
  UGCFS_ERR_NOT_FOUND: { status: 404, description: 'No such file (also answered for a wrong cookie, so ids cannot be enumerated).' },
  UGCFS_ERR_ROUTE_NOT_FOUND: { status: 404, description: 'No such route.' },
  UGCFS_ERR_BLOCK_NOT_FOUND: { status: 404, description: 'The block is not held by this data server, or is unknown to the name server.' },
  UGCFS_ERR_DATASERVER_NOT_FOUND: { status: 404, description: 'No data server with that id is registered.' },
  UGCFS_ERR_LEGACY_NOT_FOUND: { status: 404, description: 'The legacy path is not mapped and no legacy origin has it.' },
  UGCFS_ERR_OPERATION_NOT_FOUND: { status: 404, description: 'No cluster operation with that id.' },
  UGCFS_ERR_METHOD_NOT_ALLOWED: { status: 405, description: 'The method is not allowed on this path.' },
  // state conflicts
  UGCFS_ERR_CONFLICT: { status: 409, description: 'The request conflicts with current state (e.g. an operation of that kind is already running).' },
  UGCFS_ERR_BLOCK_READONLY: { status: 409, description: 'The block is sealed, being repaired, moved or compacted, and takes no writes.' },
  UGCFS_ERR_DUPLICATE_KEY: { status: 409, description: 'A record with this key already exists in the block.' },
  UGCFS_ERR_STALE_EPOCH: { status: 409, description: 'A name-server command carries a lower epoch than the highest this data server has seen: it comes from a name server that no longer leads, and nothing was done.' },
  UGCFS_ERR_FOREIGN_CLUSTER: { status: 409, description: 'The data server belongs to another cluster (its stored cluster id is not the name server\'s), or holds blocks no state of this name server ever knew; nothing it reports is used, no block is placed on it and it is sent no commands.' },
  UGCFS_ERR_NOT_LEADER: { status: 421, description: 'This name server is a standby (or no longer leads): ask the leader. The error body carries `leader`, its URL or null while none is elected.' },
  UGCFS_ERR_BAD_HOST: { status: 421, description: 'The Host header names no host this server answers (its loopback names, IP addresses, its public or advertised URL, `--allowed-hosts`): the request was not handled, and its body not read.' },
  UGCFS_ERR_RANGE_NOT_SATISFIABLE: { status: 416, description: 'The Range header does not fit the file.' },
  // flood control and quotas (docs/SECURITY.md, "Floods, quotas and signatures")
  UGCFS_ERR_RATE_LIMITED: { status: 429, description: 'Too many variant misses from this client address, or uploads with this token, in a short time; retry after the Retry-After seconds.' },
  UGCFS_ERR_TOO_MANY_VARIANTS: { status: 403, description: 'This file already has --max-variants-per-file distinct variants made by this origin; presets and variants already cached are still served.' },
  UGCFS_ERR_QUOTA_EXCEEDED: { status: 403, description: 'Storing this upload would take the upload token past --quota-bytes; nothing was stored.' },
  // payload
  UGCFS_ERR_TOO_LARGE: { status: 413, description: 'The body is larger than the configured maximum.' },
  UGCFS_ERR_UNSUPPORTED_TYPE: { status: 415, description: 'The bytes are not an allowed file type (types are sniffed, never trusted from headers).' },
  UGCFS_ERR_BAD_IMAGE: { status: 422, description: 'The image is truncated, corrupt or cannot be decoded.' },
  UGCFS_ERR_TOO_MANY_PIXELS: { status: 422, description: 'The image has more pixels than the configured limit (decompression bomb guard).' },
  UGCFS_ERR_OUTPUT_TOO_LARGE: { status: 422, description: 'The requested variant would exceed the maximum output size.' },
  // server-side
  UGCFS_ERR_INTERNAL: { status: 500, description: 'An unexpected server error.' },
  UGCFS_ERR_WATERMARK: { status: 500, description: 'A preset\'s watermark overlay is missing from storage or is not a usable PNG/WebP image: the variant is refused, never served without it.' },
  UGCFS_ERR_CHECKSUM: { status: 500, description: 'A stored record failed its CRC32-C check; it is never served.' },
  UGCFS_ERR_CORRUPT: { status: 500, description: 'On-disk data is structurally damaged (bad magic, impossible size).' },
  UGCFS_ERR_UPSTREAM: { status: 502, description: 'A peer (data server, name server, owner origin, legacy origin) answered badly.' },
  UGCFS_ERR_UNAVAILABLE: { status: 503, description: 'Temporarily unable to serve (no writable block, no live replica, shutting down).' },
  UGCFS_ERR_NO_QUORUM: { status: 503, description: 'The name servers\' metadata store (etcd) has no quorum or cannot be reached: writes are refused until it is back; reads go on.' },
  UGCFS_ERR_BUSY: { status: 503, description: 'Resize capacity is saturated; retry after the Retry-After seconds.' },
  UGCFS_ERR_TIMEOUT: { status: 504, description: 'A peer or the image pipeline took longer than its timeout.' },
  UGCFS_ERR_NO_SPACE: { status: 507, description: 'The data server\'s disk is full.' },
  UGCFS_ERR_REPLICATION: { status: 502, description: 'Not every replica acknowledged the write; nothing was acknowledged to the client.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class UgcfsError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string> | undefined;

  /** fields the error body carries beside code and message (e.g. `leader` of UGCFS_ERR_NOT_LEADER) */
  readonly details: ErrorDetails | undefined;

  constructor(code: ErrorCode, message?: string, opts?: { cause?: unknown; headers?: Record<string, string>; details?: ErrorDetails }) {
    super(message ?? ERRORS[code].description, opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'UgcfsError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.headers = opts?.headers;
    this.details = opts?.details;
  }

  toJSON(): ErrorBody {
    return { error: { ...(this.details ?? {}), code: this.code, message: this.message } };
  }
}

/** Extra fields of an error body; the documented ones are typed here. */
export interface ErrorDetails {
  /** UGCFS_ERR_NOT_LEADER: the leader's URL, or null while none is elected */
  leader?: string | null;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string } & ErrorDetails;
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(ERRORS, code);
}

export function isUgcfsError(err: unknown, code?: ErrorCode): err is UgcfsError {
  return err instanceof UgcfsError && (code === undefined || err.code === code);
}

/** Rebuilds a typed error from a peer's JSON error body, so codes survive a hop. */
export function errorFromBody(status: number, body: unknown): UgcfsError {
  const e = (body as Partial<ErrorBody> | undefined)?.error;
  if (e && isErrorCode(e.code)) return new UgcfsError(e.code, e.message, e.leader !== undefined ? { details: { leader: e.leader } } : undefined);
  if (status === 404) return new UgcfsError('UGCFS_ERR_NOT_FOUND');
  return new UgcfsError('UGCFS_ERR_UPSTREAM', `peer answered HTTP ${status}`);
}
