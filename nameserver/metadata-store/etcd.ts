// The metadata store on etcd, for a high-availability group of name servers (issue "No
// single point of failure"). Talks to etcd through src/clients/etcd-client.ts (the JSON gateway;
// why: see its header).
//
// Layout: namespace N, key K -> etcd key `<prefix>/N/K` (UTF-8), value the JSON text, so
// keys sort as in LevelDB (UTF-8 bytes) and `etcdctl get --prefix <prefix>/blocks/` reads a
// namespace. Elections live at `<prefix>/_election/<name>` (a namespace cannot start with
// '_'). The prefix defaults to `/ugcfs/default` (defaultEtcdPrefix(cluster)): one etcd
// cluster can hold several ugcfs clusters.
//
// Every write is one etcd transaction, durable when it resolves (committed by a quorum).
// A handle made with `fenced(fence)` guards each of them with
// `If(mod_revision(fence.key) == fence.epoch)`: a writer that lost the leadership (its
// lease expired, the key was deleted or re-created by another campaign) changes nothing
// and gets NotLeaderError. Reads are linearizable.
//
// High-availability primitives, designed now for the wiring step:
// - revisions: every write returns the revision it made; getEntry and iterators report the
//   revision they read at (an iteration reads every page at the revision of its first);
// - watch(prefix, afterRevision, onEvents): every change after a revision, in order, across
//   reconnects (a standby reads a snapshot, then follows from its revision);
// - leases: grantLease, keepAlive (a keeper that reports the loss), revokeLease;
// - campaign(election, value, lease): creates the election key with the lease only if it
//   does not exist; the winner's epoch is the key's revision; leader()/observeLeader() read
//   and follow the key; resign(fence) deletes it if it is still ours.
import { EtcdClient, type Compare, type EtcdClientOptions, type EtcdWatch, type KeyValue, type RequestOp, type WatchEnd } from '../../src/clients/etcd-client.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import { isEtcdDown, noQuorum, NotLeaderError, type Fence } from './errors.ts';
import { checkAtomicBatch, checkNamespaceName, checkOp, chunkBatch, ETCD_DEFAULT_MAX_TXN_OPS, type CheckedOp } from './limits.ts';
import type { BatchOp, BatchOptions, MetadataStore, Namespace, WriteResult } from './types.ts';
import { EtcdNamespace, prefixEnd } from './etcd-namespace.ts';
import { keepLeaseAlive, type KeepAliveOptions, type Lease, type LeaseKeeper } from './etcd-lease.ts';

export type { KeepAliveOptions, Lease, LeaseKeeper } from './etcd-lease.ts';

export type { Fence } from './errors.ts';

/** `/ugcfs/<cluster>`: the default key prefix of a cluster's metadata in etcd. */
export function defaultEtcdPrefix(cluster = 'default'): string {
  return `/ugcfs/${cluster}`;
}

export interface EtcdStoreOptions extends Partial<EtcdClientOptions> {
  /** a client to share (not closed by close()); else one is made from `endpoints` */
  client?: EtcdClient;
  /** key prefix, `/...` without a trailing slash (default defaultEtcdPrefix()) */
  prefix?: string;
  /** the cluster's --max-txn-ops (default 128) */
  maxTxnOps?: number;
  /** keys read per range request while iterating (default 512) */
  pageSize?: number;
}

export interface LeaderInfo {
  key: string;
  value: unknown;
  /** mod revision of the key: the leader's epoch */
  epoch: number;
  createRevision: number;
  lease: string;
}

export type CampaignResult = { won: true; fence: Fence; leader: LeaderInfo } | { won: false; leader: LeaderInfo | undefined };

export interface WatchEvent {
  type: 'put' | 'del';
  /** the namespace of the key, or undefined for keys outside namespaces (elections) */
  namespace: string | undefined;
  /** the key inside its namespace, or the key relative to the prefix */
  key: string;
  /** the JSON value (put), undefined (del) */
  value: unknown;
  /** the revision of the change */
  revision: number;
}

export interface MetadataWatch {
  /** resolves once the watch is established */
  readonly ready: Promise<void>;
  /** resolves when it ends: closed, or `compacted` (re-read a snapshot and watch from it) */
  readonly done: Promise<WatchEnd>;
  /** revision of the last change delivered */
  readonly lastRevision: number;
  /** the etcd member the watch goes through now */
  readonly endpoint: string | undefined;
  close(): Promise<void>;
}

const NAMESPACE = /^[a-z0-9][a-z0-9._-]{0,63}$/;
function parseJson(buf: Buffer): unknown {
  const text = buf.toString('utf8');
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export class EtcdMetadataStore implements MetadataStore {
  readonly kind = 'etcd' as const;
  readonly prefix: string;
  readonly client: EtcdClient;
  readonly maxTxnOps: number;
  readonly pageSize: number;

  private constructor(
    client: EtcdClient,
    private readonly ownsClient: boolean,
    prefix: string,
    maxTxnOps: number,
    pageSize: number,
    /** set on handles made by fenced(): the fence, or where to get the current one */
    readonly fence: Fence | (() => Fence) | undefined,
  ) {
    this.client = client;
    this.prefix = prefix;
    this.maxTxnOps = maxTxnOps;
    this.pageSize = pageSize;
  }

  /** Connects (a first read checks that some member answers). */
  static async open(o: EtcdStoreOptions): Promise<EtcdMetadataStore> {
    const prefix = o.prefix ?? defaultEtcdPrefix();
    if (!/^\/.*[^/]$/.test(prefix) || Buffer.byteLength(prefix) > 128) {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--etcd-prefix ${JSON.stringify(prefix)}: must start with '/', not end with '/', and be at most 128 bytes`);
    }
    let client = o.client;
    if (!client) {
      if (!o.endpoints?.length) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'etcd: no endpoint (--etcd URL,...)');
      client = new EtcdClient({ ...o, endpoints: o.endpoints });
    }
    const store = new EtcdMetadataStore(client, !o.client, prefix, o.maxTxnOps ?? ETCD_DEFAULT_MAX_TXN_OPS, o.pageSize ?? 512, undefined);
    try {
      await store.currentRevision();
    } catch (err) {
      if (!o.client) await client.close();
      throw err;
    }
    return store;
  }

  /**
   * A handle on the same data whose every write holds only while `fence` does. Given a
   * function, each write asks it for the current fence (it throws when there is none).
   */
  fenced(fence: Fence | (() => Fence)): EtcdMetadataStore {
    return new EtcdMetadataStore(this.client, false, this.prefix, this.maxTxnOps, this.pageSize, fence);
  }

  namespace<V>(name: string): Namespace<V> {
    checkNamespaceName(name);
    return new EtcdNamespace<V>(this, name);
  }

  async batch(ops: BatchOp[], opts: BatchOptions = {}): Promise<WriteResult> {
    const checked = ops.map((op) => {
      if (!(op.namespace instanceof EtcdNamespace) || op.namespace.store.prefix !== this.prefix || op.namespace.store.client !== this.client) {
        throw new TypeError('metadata store: a batch op names a namespace of another store');
      }
      return checkOp(op.namespace.name, op.type, op.key, op.type === 'put' ? op.value : undefined);
    });
    return this.write(checked, opts);
  }

  /** The store's current revision (a linearizable read). */
  async currentRevision(): Promise<number> {
    return (await this.client.range({ key: this.prefix, countOnly: true })).revision;
  }

  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  // ---------------- keys

  /** @internal */
  nsPrefix(ns: string): Buffer {
    return Buffer.from(`${this.prefix}/${ns}/`, 'utf8');
  }

  /** @internal */
  fullKey(ns: string, key: string): Buffer {
    return Buffer.from(`${this.prefix}/${ns}/${key}`, 'utf8');
  }

  electionKey(election: string): string {
    if (!NAMESPACE.test(election)) throw new UgcfsError('UGCFS_ERR_INTERNAL', `election name ${JSON.stringify(election)}: use a-z 0-9 . _ -`);
    return `${this.prefix}/_election/${election}`;
  }

  // ---------------- writes

  /** @internal */
  async write(ops: CheckedOp[], opts: BatchOptions): Promise<WriteResult> {
    if (opts.atomic !== false) {
      checkAtomicBatch(ops, this.maxTxnOps);
      return { revision: await this.txn(ops) };
    }
    let revision = 0;
    for (const chunk of chunkBatch(ops, this.maxTxnOps)) revision = await this.txn(chunk);
    return { revision };
  }

  private async txn(ops: CheckedOp[]): Promise<number> {
    const success: RequestOp[] = ops.map((o) =>
      o.json === undefined ? { deleteRange: { key: this.fullKey(o.ns, o.key) } } : { put: { key: this.fullKey(o.ns, o.key), value: o.json } },
    );
    if (!this.fence) {
      if (success.length === 0) return this.currentRevision();
      return (await this.client.txn({ success })).revision;
    }
    const f = typeof this.fence === 'function' ? this.fence() : this.fence;
    let r;
    try {
      r = await this.client.txn({
        compare: [{ key: f.key, target: 'MOD', modRevision: f.epoch }],
        success,
        failure: [{ range: { key: f.key, keysOnly: true } }],
      });
    } catch (err) {
      throw isEtcdDown(err) ? noQuorum(err) : err;
    }
    if (!r.succeeded) {
      const got = r.responses[0];
      const kv = got && 'range' in got ? got.range.kvs[0] : undefined;
      throw new NotLeaderError(f, kv?.modRevision ?? 0);
    }
    return r.revision;
  }

  // ---------------- watch

  /**
   * Delivers every change to keys under `<prefix>/<keyPrefix>` with a revision greater than
   * `afterRevision`, in revision order, across member failures. `keyPrefix` '' is the whole
   * store, 'blocks/' one namespace. onEvents is awaited before the next changes are given.
   */
  watch(keyPrefix: string, afterRevision: number, onEvents: (events: WatchEvent[], revision: number) => void | Promise<void>, o: { onReconnect?: (err: unknown, endpoint: string) => void } = {}): MetadataWatch {
    const base = Buffer.from(`${this.prefix}/`, 'utf8');
    const key = Buffer.concat([base, Buffer.from(keyPrefix, 'utf8')]);
    const w: EtcdWatch = this.client.watch(
      { key, rangeEnd: prefixEnd(key), startRevision: afterRevision + 1 },
      {
        onEvents: (events, revision) => onEvents(events.map((e) => this.decodeEvent(e.type, e.kv, base.length)), revision),
        ...(o.onReconnect ? { onReconnect: o.onReconnect } : {}),
      },
    );
    return w;
  }

  private decodeEvent(type: 'PUT' | 'DELETE', kv: KeyValue, baseLen: number): WatchEvent {
    const rel = kv.key.subarray(baseLen).toString('utf8');
    const slash = rel.indexOf('/');
    const ns = slash > 0 ? rel.slice(0, slash) : undefined;
    const inNs = ns !== undefined && NAMESPACE.test(ns);
    return {
      type: type === 'PUT' ? 'put' : 'del',
      namespace: inNs ? ns : undefined,
      key: inNs ? rel.slice(slash + 1) : rel,
      value: type === 'PUT' ? parseJson(kv.value) : undefined,
      revision: kv.modRevision,
    };
  }

  // ---------------- leases and elections

  async grantLease(ttlSeconds: number): Promise<Lease> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw new UgcfsError('UGCFS_ERR_INTERNAL', 'a lease TTL is a whole number of seconds >= 1');
    const g = await this.client.leaseGrant(ttlSeconds);
    return { id: g.id, ttlSeconds: g.ttl };
  }

  /** Refreshes the lease until it is lost or stopped (etcd-lease.ts). */
  keepAlive(lease: Lease, o: KeepAliveOptions = {}): LeaseKeeper {
    return keepLeaseAlive(this.client, lease, o);
  }

  /** Revokes the lease: every key attached to it (a leader key) is deleted at once. */
  async revokeLease(lease: Lease): Promise<void> {
    await this.client.leaseRevoke(lease.id);
  }

  /**
   * Creates the election key with `value` attached to `lease` if the key does not exist
   * (create_revision == 0). The winner gets a fence whose epoch is the key's revision.
   * Not retried on an ambiguous failure: call leader() and compare the value.
   */
  async campaign(election: string, value: unknown, lease: Lease): Promise<CampaignResult> {
    const key = this.electionKey(election);
    const json = JSON.stringify(value);
    const r = await this.client.txn({
      compare: [{ key, target: 'CREATE', createRevision: 0 } satisfies Compare],
      success: [{ put: { key, value: json, lease: lease.id } }],
      failure: [{ range: { key } }],
    });
    if (r.succeeded) {
      return { won: true, fence: { key, epoch: r.revision }, leader: { key, value, epoch: r.revision, createRevision: r.revision, lease: lease.id } };
    }
    const got = r.responses[0];
    const kv = got && 'range' in got ? got.range.kvs[0] : undefined;
    return { won: false, leader: kv ? leaderFrom(key, kv) : undefined };
  }

  /** The current holder of the election key, if any. */
  async leader(election: string): Promise<LeaderInfo | undefined> {
    const key = this.electionKey(election);
    const kv = (await this.client.range({ key })).kvs[0];
    return kv ? leaderFrom(key, kv) : undefined;
  }

  /**
   * Calls onChange with the leader now and after every change of the election key
   * (undefined: no leader; campaign then).
   */
  async observeLeader(election: string, onChange: (leader: LeaderInfo | undefined) => void | Promise<void>): Promise<MetadataWatch> {
    const key = this.electionKey(election);
    const now = await this.client.range({ key });
    const kv = now.kvs[0];
    await onChange(kv ? leaderFrom(key, kv) : undefined);
    return this.client.watch(
      { key, startRevision: now.revision + 1 },
      {
        onEvents: async (events) => {
          const last = events[events.length - 1]!;
          await onChange(last.type === 'PUT' ? leaderFrom(key, last.kv) : undefined);
        },
      },
    );
  }

  /**
   * Puts `value` at `<prefix>/_members/<group>/<name>` bound to `lease`: the member is listed
   * while its lease lives (members()).
   */
  async announce(group: string, name: string, value: unknown, lease: Lease): Promise<void> {
    await this.client.put({ key: `${this.membersPrefix(group)}${encodeURIComponent(name)}`, value: JSON.stringify(value), lease: lease.id });
  }

  /** The values of the members announced in `group` whose leases live. */
  async members(group: string): Promise<unknown[]> {
    const key = Buffer.from(this.membersPrefix(group), 'utf8');
    return (await this.client.range({ key, rangeEnd: prefixEnd(key) })).kvs.map((kv) => parseJson(kv.value));
  }

  private membersPrefix(group: string): string {
    if (!NAMESPACE.test(group)) throw new UgcfsError('UGCFS_ERR_INTERNAL', `member group ${JSON.stringify(group)}: use a-z 0-9 . _ -`);
    return `${this.prefix}/_members/${group}/`;
  }

  /** Deletes the election key if it is still the one `fence` won; true when it was. */
  async resign(fence: Fence): Promise<boolean> {
    const r = await this.client.txn({ compare: [{ key: fence.key, target: 'MOD', modRevision: fence.epoch }], success: [{ deleteRange: { key: fence.key } }] });
    return r.succeeded;
  }
}

function leaderFrom(key: string, kv: KeyValue): LeaderInfo {
  return { key, value: parseJson(kv.value), epoch: kv.modRevision, createRevision: kv.createRevision, lease: kv.lease };
}
