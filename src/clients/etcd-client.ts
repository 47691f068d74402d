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
// All connection handling is in this client, never at call sites (src/clients/etcd/: the transport
// and failover in etcd-transport.ts, KV and txn in etcd-kv.ts, leases in etcd-lease.ts,
// watch in etcd-watch.ts, wire shapes in etcd-wire.ts, public types in etcd-types.ts):
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
import { UgcfsError } from '../base/errors.ts';
import { EtcdKv } from './etcd/etcd-kv.ts';
import { EtcdLeases } from './etcd/etcd-lease.ts';
import { EtcdTransport } from './etcd/etcd-transport.ts';
import type {
  DeleteRangeRequest,
  EtcdClientOptions,
  EtcdWatch,
  PutRequest,
  RangeRequest,
  RangeResponse,
  StatusResponse,
  TxnRequest,
  TxnResponse,
  WatchHandlers,
  WatchRequest,
} from './etcd/etcd-types.ts';
import { Watcher } from './etcd/etcd-watch.ts';
import { num } from './etcd/etcd-wire.ts';

export * from './etcd/etcd-types.ts';

export class EtcdClient {
  readonly endpoints: readonly string[];
  private readonly t: EtcdTransport;
  private readonly kv: EtcdKv;
  private readonly leases: EtcdLeases;
  private readonly watches = new Set<EtcdWatch>();

  constructor(o: EtcdClientOptions) {
    this.t = new EtcdTransport(o);
    this.endpoints = this.t.endpoints;
    this.kv = new EtcdKv(this.t);
    this.leases = new EtcdLeases(this.t);
  }

  // ---------------- KV

  range(r: RangeRequest): Promise<RangeResponse> {
    return this.kv.range(r);
  }

  txn(t: TxnRequest): Promise<TxnResponse> {
    return this.kv.txn(t);
  }

  put(p: PutRequest): Promise<number> {
    return this.kv.put(p);
  }

  deleteRange(d: DeleteRangeRequest): Promise<{ revision: number; deleted: number }> {
    return this.kv.deleteRange(d);
  }

  /** Drops every revision older than `revision` (physical: wait until it is done on disk). */
  compact(revision: number, physical = true): Promise<void> {
    return this.kv.compact(revision, physical);
  }

  // ---------------- leases

  /** Grants a lease; returns its id and TTL in seconds. */
  leaseGrant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    return this.leases.grant(ttlSeconds);
  }

  /** Refreshes a lease once; returns the TTL it now has (0: the lease has expired or never was). */
  leaseKeepAliveOnce(id: string): Promise<number> {
    return this.leases.keepAliveOnce(id);
  }

  /** TTL left in seconds (-1 or 0: expired or unknown). */
  leaseTimeToLive(id: string): Promise<number> {
    return this.leases.timeToLive(id);
  }

  /** Revokes a lease and deletes every key attached to it. An unknown lease is not an error. */
  leaseRevoke(id: string): Promise<void> {
    return this.leases.revoke(id);
  }

  // ---------------- maintenance

  async status(endpoint: string): Promise<StatusResponse> {
    const w = await this.t.call('/v3/maintenance/status', {}, { idempotent: true, endpoint });
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
    await this.t.call('/v3/maintenance/defragment', {}, { idempotent: true, endpoint, timeoutMs });
  }

  /** True when the member answers /health with a leader and a quorum. */
  health(endpoint: string, timeoutMs = 2000): Promise<boolean> {
    return this.t.health(endpoint, timeoutMs);
  }

  // ---------------- watch

  /** Follows changes in [key, rangeEnd) from startRevision, across reconnects, until closed. */
  watch(req: WatchRequest, handlers: WatchHandlers): EtcdWatch {
    if (this.t.isClosed) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'etcd client is closed');
    const w = new Watcher(this.t, req, handlers);
    this.watches.add(w);
    void w.done.then(() => this.watches.delete(w));
    return w;
  }

  async close(): Promise<void> {
    this.t.markClosed();
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.t.close();
  }

  /** @internal endpoints in the order to try them: the preferred first, avoided ones last */
  order(): string[] {
    return this.t.order();
  }

  /** @internal an endpoint failed: try the others first for a while */
  avoid(endpoint: string): void {
    this.t.avoid(endpoint);
  }
}
