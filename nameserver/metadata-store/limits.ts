// Limits both metadata stores enforce, taken from etcd's defaults so that what LevelDB accepts
// etcd accepts too (README.md, "Limits"):
// - etcd refuses a request over --max-request-bytes (default 1.5 MiB = 1,572,864 bytes of
//   the raft request: keys, values and a few bytes of framing per op);
// - etcd refuses a transaction with more than --max-txn-ops ops (default 128).
// Keys are checked too: a key is a non-empty, well-formed UTF-16 string (a lone surrogate
// would encode to U+FFFD and two keys would collide) of at most MAX_KEY_BYTES.
import { UgcfsError } from '../../src/base/errors.ts';
import type { RangeOptions } from './types.ts';

/** etcd's default --max-request-bytes. */
export const ETCD_MAX_REQUEST_BYTES = 1_572_864;
/** etcd's default --max-txn-ops. */
export const ETCD_DEFAULT_MAX_TXN_OPS = 128;
/** Largest JSON text of one value. */
export const MAX_VALUE_BYTES = 1_048_576;
/** Largest key (legacy paths are at most 1 KiB: src/wire/legacy-path.ts). */
export const MAX_KEY_BYTES = 4096;
/**
 * Budget of one write request: etcd's limit less room for the prefix, the fence's compare
 * and protobuf framing, which PER_OP_OVERHEAD does not cover exactly.
 */
export const MAX_REQUEST_BYTES = ETCD_MAX_REQUEST_BYTES - 16_384;
/** Counted for each op on top of its key and value: the namespace prefix and framing. */
export const PER_OP_OVERHEAD = 256;

const NAMESPACE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isWellFormed(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

export function checkNamespaceName(name: string): void {
  if (typeof name !== 'string' || !NAMESPACE.test(name)) {
    throw invalid(`namespace name ${JSON.stringify(name)}: use 1-64 of a-z 0-9 . _ - starting with a letter or digit`);
  }
}

export function checkKey(key: string): number {
  if (typeof key !== 'string' || key.length === 0) throw invalid('a key must be a non-empty string');
  if (!isWellFormed(key)) throw invalid('a key must be well-formed UTF-16 (no lone surrogate)');
  const n = Buffer.byteLength(key, 'utf8');
  if (n > MAX_KEY_BYTES) throw tooLarge(`a key of ${n} bytes is over the limit of ${MAX_KEY_BYTES}`);
  return n;
}

/** The value's JSON text (what both stores keep), checked against MAX_VALUE_BYTES. */
export function encodeValue(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw invalid(`the value cannot be stored as JSON: ${(err as Error).message}`, err);
  }
  if (typeof text !== 'string') throw invalid(`the value cannot be stored as JSON (${typeof value})`);
  const n = Buffer.byteLength(text, 'utf8');
  if (n > MAX_VALUE_BYTES) throw tooLarge(`a value of ${n} bytes of JSON is over the limit of ${MAX_VALUE_BYTES}`);
  return text;
}

/** A validated write op: key and JSON text (undefined for a delete). */
export interface CheckedOp {
  ns: string;
  key: string;
  json: string | undefined;
  /** estimated bytes it takes in an etcd request */
  bytes: number;
}

export function checkOp(ns: string, type: string, key: string, value: unknown): CheckedOp {
  if (type !== 'put' && type !== 'del') throw invalid(`batch op type must be 'put' or 'del', not ${JSON.stringify(type)}`);
  const kb = checkKey(key);
  const json = type === 'put' ? encodeValue(value) : undefined;
  return { ns, key, json, bytes: kb + (json === undefined ? 0 : Buffer.byteLength(json, 'utf8')) + PER_OP_OVERHEAD };
}

/** Refuses an atomic batch that one etcd transaction cannot hold. */
export function checkAtomicBatch(ops: CheckedOp[], maxTxnOps: number): void {
  if (ops.length > maxTxnOps) {
    throw tooLarge(`an atomic batch of ${ops.length} ops is over etcd's limit of ${maxTxnOps} ops per transaction (--max-txn-ops); split it, or pass { atomic: false } if its ops stand alone`);
  }
  const bytes = ops.reduce((s, o) => s + o.bytes, 0);
  if (bytes > MAX_REQUEST_BYTES) {
    throw tooLarge(`an atomic batch of about ${bytes} bytes is over the limit of ${MAX_REQUEST_BYTES} for one etcd request (--max-request-bytes); split it, or pass { atomic: false } if its ops stand alone`);
  }
}

/** Splits a non-atomic batch into chunks that each fit one transaction. */
export function chunkBatch(ops: CheckedOp[], maxTxnOps: number): CheckedOp[][] {
  const chunks: CheckedOp[][] = [];
  let cur: CheckedOp[] = [];
  let bytes = 0;
  for (const op of ops) {
    if (cur.length > 0 && (cur.length >= maxTxnOps || bytes + op.bytes > MAX_REQUEST_BYTES)) {
      chunks.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(op);
    bytes += op.bytes;
  }
  if (cur.length > 0) chunks.push(cur);
  return chunks;
}

export function checkRange(r: RangeOptions): void {
  for (const b of ['gt', 'gte', 'lt', 'lte'] as const) {
    const v = r[b];
    if (v !== undefined && (typeof v !== 'string' || !isWellFormed(v))) throw invalid(`range bound ${b} must be a well-formed string`);
  }
  if (r.gt !== undefined && r.gte !== undefined) throw invalid('give gt or gte, not both');
  if (r.lt !== undefined && r.lte !== undefined) throw invalid('give lt or lte, not both');
  if (r.limit !== undefined && (!Number.isInteger(r.limit) || r.limit < -1)) throw invalid('range limit must be an integer >= -1');
}

function invalid(message: string, cause?: unknown): UgcfsError {
  const e = new UgcfsError('UGCFS_ERR_INTERNAL', `metadata store: ${message}`, cause === undefined ? undefined : { cause });
  return Object.assign(e, { metadataStore: 'invalid' as const });
}

function tooLarge(message: string): UgcfsError {
  return Object.assign(new UgcfsError('UGCFS_ERR_TOO_LARGE', `metadata store: ${message}`), { metadataStore: 'too-large' as const });
}
