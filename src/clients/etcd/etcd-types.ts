// The etcd client's public shapes: options, requests and answers of the KV, lease and watch
// calls (camelCase, numbers; the wire's snake_case and base64 live in etcd-wire.ts), and the
// EtcdError every failed call throws. See src/clients/etcd-client.ts for the client itself.
import { UgcfsError, type ErrorCode } from '../../base/errors.ts';

export interface EtcdClientOptions {
  /** member client URLs, e.g. http://10.0.0.1:2379 */
  endpoints: string[];
  /** one attempt's limit for a unary call, ms (default 5000) */
  timeoutMs?: number;
  /** TCP connect limit, ms (default 1000) */
  connectTimeoutMs?: number;
  /** an endpoint that failed is tried last for this long, ms (default 2000) */
  avoidMs?: number;
  /** how often a watch checks the member it is connected to, ms (default 2000) */
  watchCheckMs?: number;
}

/** Splits `--etcd URL,URL,...` into endpoint URLs (scheme defaults to http://). */
export function parseEtcdEndpoints(flag: string): string[] {
  const list = flag.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--etcd needs at least one URL');
  return list.map((s) => {
    const url = new URL(/^[a-z]+:\/\//i.test(s) ? s : `http://${s}`);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--etcd: ${s} is not an http(s) URL`);
    return url.origin;
  });
}

export type Bytes = Buffer | string;

export interface KeyValue {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  /** lease id ('0': none); lease ids are 64-bit, so they stay strings */
  lease: string;
}

export interface RangeRequest {
  key: Bytes;
  /** exclusive end; '\0' means every key >= key */
  rangeEnd?: Bytes;
  limit?: number;
  /** read at this revision (0: the newest) */
  revision?: number;
  sortOrder?: 'NONE' | 'ASCEND' | 'DESCEND';
  sortTarget?: 'KEY' | 'VERSION' | 'CREATE' | 'MOD' | 'VALUE';
  /** served by the member alone, without a quorum round (may be stale) */
  serializable?: boolean;
  keysOnly?: boolean;
  countOnly?: boolean;
}

export interface RangeResponse {
  /** the store's revision the read saw */
  revision: number;
  kvs: KeyValue[];
  more: boolean;
  count: number;
}

export interface PutRequest {
  key: Bytes;
  value: Bytes;
  lease?: string;
}

export interface DeleteRangeRequest {
  key: Bytes;
  rangeEnd?: Bytes;
}

export type RequestOp = { put: PutRequest } | { deleteRange: DeleteRangeRequest } | { range: RangeRequest };

export type ResponseOp = { put: { revision: number } } | { deleteRange: { revision: number; deleted: number } } | { range: RangeResponse };

export type Compare = { key: Bytes; result?: 'EQUAL' | 'GREATER' | 'LESS' | 'NOT_EQUAL' } & (
  | { target: 'MOD'; modRevision: number }
  | { target: 'CREATE'; createRevision: number }
  | { target: 'VERSION'; version: number }
  | { target: 'VALUE'; value: Bytes }
  | { target: 'LEASE'; lease: string }
);

export interface TxnRequest {
  compare?: Compare[];
  success?: RequestOp[];
  failure?: RequestOp[];
}

export interface TxnResponse {
  revision: number;
  succeeded: boolean;
  responses: ResponseOp[];
}

export interface StatusResponse {
  endpoint: string;
  version: string;
  dbSize: number;
  dbSizeInUse: number;
  leader: string;
  memberId: string;
  revision: number;
  raftTerm: number;
}

export interface WatchRequest {
  key: Bytes;
  rangeEnd?: Bytes;
  /** first revision to deliver (inclusive) */
  startRevision: number;
  prevKv?: boolean;
}

export interface WatchEventRaw {
  type: 'PUT' | 'DELETE';
  kv: KeyValue;
  prevKv?: KeyValue;
}

export type WatchEnd =
  | { reason: 'closed' }
  /** the revision to start from was compacted away: re-read, then watch from the new snapshot */
  | { reason: 'compacted'; compactRevision: number }
  | { reason: 'canceled'; message: string };

export interface WatchHandlers {
  /** Called in revision order; the next batch waits for the promise it returns. */
  onEvents(events: WatchEventRaw[], revision: number): void | Promise<void>;
  /** A stream broke and is being re-established (for logs and tests). */
  onReconnect?(err: unknown, endpoint: string): void;
}

export interface EtcdWatch {
  /** the revision of the last event delivered (start - 1 before any) */
  readonly lastRevision: number;
  /** the member the stream goes through now */
  readonly endpoint: string | undefined;
  /** resolves once the watch has been created on a member (the first time) */
  readonly ready: Promise<void>;
  /** resolves when the watch ends, with why (never rejects) */
  readonly done: Promise<WatchEnd>;
  close(): Promise<void>;
}

export type EtcdErrorKind = 'unavailable' | 'timeout' | 'too-large' | 'compacted' | 'lease-not-found' | 'invalid' | 'auth' | 'other';

export interface EtcdErrorInfo {
  kind: EtcdErrorKind;
  /** gRPC status code in etcd's answer, when it answered */
  grpcCode: number | undefined;
  endpoint: string;
  /** a state-changing call failed after the request may have arrived: it may have been applied */
  ambiguous: boolean;
}

export class EtcdError extends UgcfsError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly etcd: EtcdErrorInfo,
    cause?: unknown,
  ) {
    super(code, message, cause === undefined ? undefined : { cause });
  }
}
