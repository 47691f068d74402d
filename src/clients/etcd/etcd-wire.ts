// etcd's JSON gateway wire form (grpc-gateway: keys and values base64, 64-bit integers as
// decimal strings, snake_case fields) to and from the shapes of etcd-types.ts, and how an
// answer or a network failure becomes an EtcdError.
import type { ErrorCode } from '../../base/errors.ts';
import { EtcdError, type Bytes, type Compare, type EtcdErrorKind, type KeyValue, type RangeRequest, type RangeResponse, type RequestOp, type ResponseOp } from './etcd-types.ts';

export const b64 = (b: Bytes): string => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b).toString('base64');
export const num = (v: unknown): number => (v === undefined || v === null ? 0 : Number(v));

export interface WireKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

export function kvFromWire(w: WireKv): KeyValue {
  return {
    key: Buffer.from(w.key ?? '', 'base64'),
    value: Buffer.from(w.value ?? '', 'base64'),
    createRevision: num(w.create_revision),
    modRevision: num(w.mod_revision),
    version: num(w.version),
    lease: w.lease ?? '0',
  };
}

export function rangeToWire(r: RangeRequest): Record<string, unknown> {
  const w: Record<string, unknown> = { key: b64(r.key) };
  if (r.rangeEnd !== undefined) w.range_end = b64(r.rangeEnd);
  if (r.limit) w.limit = String(r.limit);
  if (r.revision) w.revision = String(r.revision);
  if (r.sortOrder && r.sortOrder !== 'NONE') w.sort_order = r.sortOrder;
  if (r.sortTarget && r.sortTarget !== 'KEY') w.sort_target = r.sortTarget;
  if (r.serializable) w.serializable = true;
  if (r.keysOnly) w.keys_only = true;
  if (r.countOnly) w.count_only = true;
  return w;
}

export function rangeFromWire(w: Record<string, unknown>, revision: number): RangeResponse {
  return { revision, kvs: ((w.kvs as WireKv[] | undefined) ?? []).map(kvFromWire), more: w.more === true, count: num(w.count) };
}

export function opToWire(op: RequestOp): Record<string, unknown> {
  if ('put' in op) {
    const p: Record<string, unknown> = { key: b64(op.put.key), value: b64(op.put.value) };
    if (op.put.lease && op.put.lease !== '0') p.lease = op.put.lease;
    return { request_put: p };
  }
  if ('deleteRange' in op) {
    const d: Record<string, unknown> = { key: b64(op.deleteRange.key) };
    if (op.deleteRange.rangeEnd !== undefined) d.range_end = b64(op.deleteRange.rangeEnd);
    return { request_delete_range: d };
  }
  return { request_range: rangeToWire(op.range) };
}

export function compareToWire(c: Compare): Record<string, unknown> {
  const w: Record<string, unknown> = { key: b64(c.key), target: c.target, result: c.result ?? 'EQUAL' };
  switch (c.target) {
    case 'MOD': w.mod_revision = String(c.modRevision); break;
    case 'CREATE': w.create_revision = String(c.createRevision); break;
    case 'VERSION': w.version = String(c.version); break;
    case 'VALUE': w.value = b64(c.value); break;
    case 'LEASE': w.lease = c.lease; break;
  }
  return w;
}

export function responseOpFromWire(w: Record<string, Record<string, unknown> | undefined>, txnRevision: number): ResponseOp {
  if (w.response_range) return { range: rangeFromWire(w.response_range, txnRevision) };
  if (w.response_delete_range) return { deleteRange: { revision: txnRevision, deleted: num(w.response_delete_range.deleted) } };
  return { put: { revision: txnRevision } };
}

export const headerRevision = (w: Record<string, unknown>): number => num((w.header as { revision?: string } | undefined)?.revision);

// Errors whose request never reached a server: safe to send again anywhere.
export const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);

export function errCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const c = (e as { code?: unknown }).code;
    if (typeof c === 'string') return c;
    const inner = (e as { errors?: unknown[] }).errors;
    if (Array.isArray(inner) && inner.length > 0) {
      const ic = errCode(inner[0]);
      if (ic) return ic;
    }
  }
  return undefined;
}

export function isTimeout(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  const code = errCode(err);
  return name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT';
}

/** etcd's answer to a failed call: gRPC code and message. */
export function answerError(endpoint: string, status: number, body: unknown): EtcdError {
  const b = body as { code?: number; message?: string; error?: string | { grpc_code?: number; message?: string } } | undefined;
  const inner = typeof b?.error === 'object' ? b.error : undefined;
  const grpc = typeof b?.code === 'number' ? b.code : inner?.grpc_code;
  const message = b?.message ?? inner?.message ?? (typeof b?.error === 'string' ? b.error : `HTTP ${status}`);
  let kind: EtcdErrorKind = 'other';
  let code: ErrorCode = 'UGCFS_ERR_INTERNAL';
  if (/too many operations|request is too large|larger than max/.test(message) || grpc === 8) [kind, code] = ['too-large', 'UGCFS_ERR_TOO_LARGE'];
  else if (grpc === 11 || /compacted/.test(message)) [kind, code] = ['compacted', 'UGCFS_ERR_CONFLICT'];
  else if (grpc === 5 && /lease/.test(message)) [kind, code] = ['lease-not-found', 'UGCFS_ERR_CONFLICT'];
  else if (grpc === 14 || grpc === 4 || status === 503) [kind, code] = ['unavailable', 'UGCFS_ERR_UNAVAILABLE'];
  else if (grpc === 16 || grpc === 7) [kind, code] = ['auth', 'UGCFS_ERR_UNAUTHORIZED'];
  else if (grpc === 3) [kind, code] = ['invalid', 'UGCFS_ERR_INTERNAL'];
  return new EtcdError(code, `etcd ${endpoint}: ${message}`, { kind, grpcCode: grpc, endpoint, ambiguous: false });
}

export function describeError(err: unknown): string {
  const code = errCode(err);
  const msg = (err as Error)?.message ?? String(err);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}
