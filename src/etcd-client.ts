// One typed client for etcd v3, spoken through etcd's JSON gateway (grpc-gateway, served on
// the client URLs of every member: POST /v3/kv/range, /v3/kv/txn, /v3/kv/compaction,
// /v3/lease/grant|keepalive|revoke|timetolive, /v3/watch, /v3/maintenance/status|defragment;
// keys and values base64, 64-bit integers as decimal strings) with undici.
//
// Why the gateway and not the `etcd3` npm package: etcd3 speaks gRPC and brings
// @grpc/grpc-js, @grpc/proto-loader, protobufjs (and through it yargs, lodash.camelcase,
// long), cockatiel and bignumber.js — a second HTTP/2 stack and a .proto loader at start —
// and it has been maintained in bursts (etcd's own site proposed dropping it from its list
// of clients in 2023 for three years without an update and a bug that let its election
// elect two leaders). undici is already a dependency; the gateway has been stable since
// etcd 3.4 (the /v3/ paths; Debian ships 3.4.23) and carries everything the metadata store
// needs, watch and lease keep-alive included (both are streams: a watch is one long POST
// whose answer is a stream of JSON lines; a keep-alive is one POST per refresh).
//
// All connection handling is here, never at call sites:
// - endpoints: a list of member URLs; calls go to the preferred one, and an endpoint that
//   failed moves the preference on and is avoided for a while;
// - timeouts: every attempt has one (connect and whole call);
// - retries: idempotent calls (reads, status, lease keep-alive and time-to-live) are retried
//   on the next endpoint after any connection error, timeout or "unavailable" answer; calls
//   that change state (put, txn, delete, compaction, lease grant and revoke) are retried only
//   when the request provably never left (connection refused, connect timeout, no route): a
//   failure after the request may have arrived is thrown with `ambiguous: true` — it may or
//   may not have been applied, and only the caller can tell (a fenced writer re-reads);
// - watch: reconnects on another endpoint from the revision after the last one delivered,
//   and checks the member it watches through (/health) so a stopped or partitioned member
//   is left rather than waited on.
import { Agent, request } from 'undici';
import { UgcfsError, type ErrorCode } from './errors.ts';

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

// ---------------------------------------------------------------- types

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

// ---------------------------------------------------------------- wire helpers

const b64 = (b: Bytes): string => (typeof b === 'string' ? Buffer.from(b, 'utf8') : b).toString('base64');
const num = (v: unknown): number => (v === undefined || v === null ? 0 : Number(v));

interface WireKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

function kvFromWire(w: WireKv): KeyValue {
  return {
    key: Buffer.from(w.key ?? '', 'base64'),
    value: Buffer.from(w.value ?? '', 'base64'),
    createRevision: num(w.create_revision),
    modRevision: num(w.mod_revision),
    version: num(w.version),
    lease: w.lease ?? '0',
  };
}

function rangeToWire(r: RangeRequest): Record<string, unknown> {
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

function rangeFromWire(w: Record<string, unknown>, revision: number): RangeResponse {
  return { revision, kvs: ((w.kvs as WireKv[] | undefined) ?? []).map(kvFromWire), more: w.more === true, count: num(w.count) };
}

function opToWire(op: RequestOp): Record<string, unknown> {
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

function compareToWire(c: Compare): Record<string, unknown> {
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

function responseOpFromWire(w: Record<string, Record<string, unknown> | undefined>, txnRevision: number): ResponseOp {
  if (w.response_range) return { range: rangeFromWire(w.response_range, txnRevision) };
  if (w.response_delete_range) return { deleteRange: { revision: txnRevision, deleted: num(w.response_delete_range.deleted) } };
  return { put: { revision: txnRevision } };
}

const headerRevision = (w: Record<string, unknown>): number => num((w.header as { revision?: string } | undefined)?.revision);

// Errors whose request never reached a server: safe to send again anywhere.
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EADDRNOTAVAIL']);

function errCode(err: unknown): string | undefined {
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

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  const code = errCode(err);
  return name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT';
}

/** etcd's answer to a failed call: gRPC code and message. */
function answerError(endpoint: string, status: number, body: unknown): EtcdError {
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

interface CallOpts {
  idempotent: boolean;
  timeoutMs?: number;
  /** only this endpoint (maintenance calls aimed at one member) */
  endpoint?: string;
}

// ---------------------------------------------------------------- client

export class EtcdClient {
  readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  private readonly avoidMs: number;
  private readonly watchCheckMs: number;
  private readonly agent: Agent;
  private readonly avoidUntil = new Map<string, number>();
  private preferred = 0;
  private closed = false;
  private readonly watches = new Set<EtcdWatch>();

  constructor(o: EtcdClientOptions) {
    if (o.endpoints.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'etcd: no endpoint');
    this.endpoints = o.endpoints.map((e) => new URL(e).origin);
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.avoidMs = o.avoidMs ?? 2000;
    this.watchCheckMs = o.watchCheckMs ?? 2000;
    this.agent = new Agent({ connect: { timeout: o.connectTimeoutMs ?? 1000 }, keepAliveTimeout: 4000, keepAliveMaxTimeout: 10_000, pipelining: 1 });
  }

  // ---------------- KV

  async range(r: RangeRequest): Promise<RangeResponse> {
    const w = await this.call('/v3/kv/range', rangeToWire(r), { idempotent: true });
    return rangeFromWire(w, headerRevision(w));
  }

  async txn(t: TxnRequest): Promise<TxnResponse> {
    const body: Record<string, unknown> = {};
    if (t.compare?.length) body.compare = t.compare.map(compareToWire);
    if (t.success?.length) body.success = t.success.map(opToWire);
    if (t.failure?.length) body.failure = t.failure.map(opToWire);
    // A txn made only of reads changes nothing and may be retried.
    const readOnly = [...(t.success ?? []), ...(t.failure ?? [])].every((op) => 'range' in op);
    const w = await this.call('/v3/kv/txn', body, { idempotent: readOnly });
    const rev = headerRevision(w);
    const responses = ((w.responses as Array<Record<string, Record<string, unknown>>> | undefined) ?? []).map((r) => responseOpFromWire(r, rev));
    return { revision: rev, succeeded: w.succeeded === true, responses };
  }

  async put(p: PutRequest): Promise<number> {
    return (await this.txn({ success: [{ put: p }] })).revision;
  }

  async deleteRange(d: DeleteRangeRequest): Promise<{ revision: number; deleted: number }> {
    const r = await this.txn({ success: [{ deleteRange: d }] });
    const op = r.responses[0];
    return { revision: r.revision, deleted: op && 'deleteRange' in op ? op.deleteRange.deleted : 0 };
  }

  /** Drops every revision older than `revision` (physical: wait until it is done on disk). */
  async compact(revision: number, physical = true): Promise<void> {
    await this.call('/v3/kv/compaction', { revision: String(revision), physical }, { idempotent: true });
  }

  // ---------------- leases

  /** Grants a lease; returns its id and TTL in seconds. */
  async leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const w = await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) }, { idempotent: false });
    return { id: String(w.ID), ttl: num(w.TTL) };
  }

  /** Refreshes a lease once; returns the TTL it now has (0: the lease has expired or never was). */
  async leaseKeepAliveOnce(id: string): Promise<number> {
    // A stream on the gateway: one request line in, one {"result": ...} line out.
    const w = await this.call('/v3/lease/keepalive', { ID: id }, { idempotent: true });
    const result = (w.result ?? w) as { TTL?: string };
    return num(result.TTL);
  }

  /** TTL left in seconds (-1 or 0: expired or unknown). */
  async leaseTimeToLive(id: string): Promise<number> {
    const w = await this.call('/v3/lease/timetolive', { ID: id }, { idempotent: true });
    return num(w.TTL);
  }

  /** Revokes a lease and deletes every key attached to it. An unknown lease is not an error. */
  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id }, { idempotent: false });
    } catch (err) {
      if (err instanceof EtcdError && err.etcd.kind === 'lease-not-found') return;
      throw err;
    }
  }

  // ---------------- maintenance

  async status(endpoint: string): Promise<StatusResponse> {
    const w = await this.call('/v3/maintenance/status', {}, { idempotent: true, endpoint });
    const h = w.header as { member_id?: string; revision?: string; raft_term?: string } | undefined;
    return {
      endpoint,
      version: String(w.version ?? ''),
      dbSize: num(w.dbSize),
      dbSizeInUse: num(w.dbSizeInUse),
      leader: String(w.leader ?? ''),
      memberId: String(h?.member_id ?? ''),
      revision: num(h?.revision),
      raftTerm: num(w.raftTerm),
    };
  }

  async defragment(endpoint: string, timeoutMs = 60_000): Promise<void> {
    await this.call('/v3/maintenance/defragment', {}, { idempotent: true, endpoint, timeoutMs });
  }

  /** True when the member answers /health with a leader and a quorum. */
  async health(endpoint: string, timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await request(`${endpoint}/health`, { dispatcher: this.agent, signal: AbortSignal.timeout(timeoutMs) });
      const body = (await res.body.json()) as { health?: string | boolean };
      return res.statusCode === 200 && String(body.health) === 'true';
    } catch {
      return false;
    }
  }

  // ---------------- watch

  /** Follows changes in [key, rangeEnd) from startRevision, across reconnects, until closed. */
  watch(req: WatchRequest, handlers: WatchHandlers): EtcdWatch {
    if (this.closed) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'etcd client is closed');
    const w = new Watcher(this, req, handlers);
    this.watches.add(w);
    void w.done.then(() => this.watches.delete(w));
    return w;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.agent.close().catch(() => this.agent.destroy());
  }

  // ---------------- transport

  /** @internal endpoints in the order to try them: the preferred first, avoided ones last */
  order(): string[] {
    const n = this.endpoints.length;
    const now = Date.now();
    const all = Array.from({ length: n }, (_, i) => this.endpoints[(this.preferred + i) % n]!);
    return [...all.filter((e) => (this.avoidUntil.get(e) ?? 0) <= now), ...all.filter((e) => (this.avoidUntil.get(e) ?? 0) > now)];
  }

  /** @internal an endpoint failed: try the others first for a while */
  avoid(endpoint: string): void {
    this.avoidUntil.set(endpoint, Date.now() + this.avoidMs);
    if (this.endpoints[this.preferred] === endpoint) this.preferred = (this.preferred + 1) % this.endpoints.length;
  }

  /** @internal */
  get dispatcher(): Agent {
    return this.agent;
  }

  /** @internal */
  get checkMs(): number {
    return this.watchCheckMs;
  }

  /** @internal */
  get isClosed(): boolean {
    return this.closed;
  }

  private async call(path: string, body: unknown, o: CallOpts): Promise<Record<string, unknown>> {
    if (this.closed) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'etcd client is closed');
    const payload = JSON.stringify(body);
    const candidates = o.endpoint ? [o.endpoint] : this.order();
    // Idempotent calls go round the endpoints twice; others try each at most once, and only
    // while their request provably never left.
    const attempts = o.idempotent ? candidates.length * 2 : candidates.length;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      const endpoint = candidates[i % candidates.length]!;
      if (i === candidates.length) await sleep(100);
      let status: number;
      let text: string;
      try {
        const res = await request(`${endpoint}${path}`, {
          method: 'POST',
          body: payload,
          headers: { 'content-type': 'application/json' },
          dispatcher: this.agent,
          signal: AbortSignal.timeout(o.timeoutMs ?? this.timeoutMs),
        });
        status = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        const notSent = NOT_SENT.has(errCode(err) ?? '');
        this.avoid(endpoint);
        last = new EtcdError(isTimeout(err) ? 'UGCFS_ERR_TIMEOUT' : 'UGCFS_ERR_UNAVAILABLE', `etcd ${endpoint}${path}: ${describe(err)}`, {
          kind: isTimeout(err) ? 'timeout' : 'unavailable',
          grpcCode: undefined,
          endpoint,
          ambiguous: !o.idempotent && !notSent,
        }, err);
        if (o.idempotent || notSent) continue;
        throw last;
      }
      let parsed: unknown;
      try {
        // a streamed answer (keep-alive) is JSON lines: the first one is the answer
        const line = text.split('\n').find((l) => l.trim() !== '') ?? '{}';
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (status === 200 && parsed && typeof parsed === 'object' && !('error' in parsed)) return parsed as Record<string, unknown>;
      const e = answerError(endpoint, status, parsed ?? { message: text.slice(0, 200) });
      if (e.etcd.kind === 'unavailable' || e.etcd.kind === 'timeout') {
        this.avoid(endpoint);
        if (o.idempotent) {
          last = e;
          continue;
        }
        e.etcd.ambiguous = true;
      }
      throw e;
    }
    throw last;
  }
}

function describe(err: unknown): string {
  const code = errCode(err);
  const msg = (err as Error)?.message ?? String(err);
  return code && !msg.includes(code) ? `${code} ${msg}` : msg;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- watch

class Watcher implements EtcdWatch {
  lastRevision: number;
  endpoint: string | undefined;
  readonly ready: Promise<void>;
  readonly done: Promise<WatchEnd>;
  private resolveReady!: () => void;
  private resolveDone!: (e: WatchEnd) => void;
  private stopped = false;
  private abort: AbortController | undefined;

  constructor(
    private readonly client: EtcdClient,
    private readonly req: WatchRequest,
    private readonly handlers: WatchHandlers,
  ) {
    this.lastRevision = req.startRevision - 1;
    this.ready = new Promise((r) => (this.resolveReady = r));
    this.done = new Promise((r) => (this.resolveDone = r));
    void this.run();
  }

  async close(): Promise<void> {
    this.finish({ reason: 'closed' });
    await this.done;
  }

  private finish(end: WatchEnd): void {
    if (this.stopped) return;
    this.stopped = true;
    this.abort?.abort();
    this.resolveReady();
    this.resolveDone(end);
  }

  private async run(): Promise<void> {
    let backoff = 50;
    while (!this.stopped && !this.client.isClosed) {
      const endpoint = this.client.order()[0]!;
      this.endpoint = endpoint;
      let err: unknown;
      try {
        const end = await this.stream(endpoint);
        if (end) return this.finish(end);
        backoff = 50;
        err = new Error('the watch stream ended');
      } catch (e) {
        err = e;
      }
      if (this.stopped) break;
      this.client.avoid(endpoint);
      this.handlers.onReconnect?.(err, endpoint);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 1000);
    }
    this.finish({ reason: 'closed' });
  }

  /** One stream: returns a final end, or undefined (or throws) when it should be re-established. */
  private async stream(endpoint: string): Promise<WatchEnd | undefined> {
    const abort = new AbortController();
    this.abort = abort;
    const create: Record<string, unknown> = { key: b64(this.req.key), start_revision: String(this.lastRevision + 1) };
    if (this.req.rangeEnd !== undefined) create.range_end = b64(this.req.rangeEnd);
    if (this.req.prevKv) create.prev_kv = true;
    // A member that stops answering (SIGSTOP, partition, lost quorum) keeps the TCP stream
    // open and silent; its /health says so, and the stream is dropped for another member.
    let healthFailures = 0;
    const check = setInterval(() => {
      void this.client.health(endpoint, Math.min(2000, this.client.checkMs)).then((ok) => {
        healthFailures = ok ? 0 : healthFailures + 1;
        if (healthFailures >= 2 && !abort.signal.aborted) abort.abort(new Error(`etcd ${endpoint} failed its health check`));
      });
    }, this.client.checkMs);
    try {
      const res = await request(`${endpoint}/v3/watch`, {
        method: 'POST',
        body: JSON.stringify({ create_request: create }),
        headers: { 'content-type': 'application/json' },
        dispatcher: this.client.dispatcher,
        signal: abort.signal,
        headersTimeout: 10_000,
        bodyTimeout: 0,
      });
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = { message: text.slice(0, 200) };
        }
        throw answerError(endpoint, res.statusCode, parsed);
      }
      let buf = '';
      for await (const chunk of res.body) {
        buf += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          const end = await this.onLine(line, endpoint);
          if (end) return end;
        }
      }
      return undefined;
    } finally {
      clearInterval(check);
      if (!abort.signal.aborted) abort.abort();
    }
  }

  private async onLine(line: string, endpoint: string): Promise<WatchEnd | undefined> {
    const msg = JSON.parse(line) as { result?: Record<string, unknown>; error?: unknown };
    if (msg.error !== undefined || !msg.result) throw answerError(endpoint, 200, msg);
    const r = msg.result;
    if (r.created === true) this.resolveReady();
    if (r.canceled === true) {
      const compact = num(r.compact_revision);
      if (compact > 0) return { reason: 'compacted', compactRevision: compact };
      return { reason: 'canceled', message: String(r.cancel_reason ?? 'the watch was canceled by etcd') };
    }
    const events = ((r.events as Array<{ type?: string; kv?: WireKv; prev_kv?: WireKv }> | undefined) ?? []).map((e) => {
      const ev: WatchEventRaw = { type: e.type === 'DELETE' ? 'DELETE' : 'PUT', kv: kvFromWire(e.kv ?? {}) };
      if (e.prev_kv) ev.prevKv = kvFromWire(e.prev_kv);
      return ev;
    });
    // Events already delivered (a reconnect never asks for them again, but be sure) are dropped.
    const fresh = events.filter((e) => e.kv.modRevision > this.lastRevision);
    if (fresh.length === 0 || this.stopped) return undefined;
    const rev = fresh[fresh.length - 1]!.kv.modRevision;
    await this.handlers.onEvents(fresh, rev);
    this.lastRevision = rev;
    return undefined;
  }
}
