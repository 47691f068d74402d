// Assignment: a fresh fid in a writable block whose every replica is alive. Keeps a small
// pool of writable blocks per replica count, creating blocks (persisted first, then created
// on each chosen data server) when the pool runs low. The pool (one block per live server
// by default: 400 at 400 servers) is computed at most every POOL_TTL_MS, not per assign:
// checking every open block's copies on each assign was most of an assign's CPU at 400
// servers, and computing it every 100 ms a fifth of the name server's garbage at 8M blocks
// (young-generation pauses land on assigns). The block picked is checked again, so no fid
// goes to a block no longer writable; one that became writable again waits for the next pool.
import { isUgcfsError, UgcfsError } from '../src/base/errors.ts';
import { encodeFid, MAX_KEY, newCookie } from '../src/wire/file-id.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { AssignResult, BlockCreate } from '../src/wire/protocol.ts';
import type { BlockMap, BlockRecord } from './block-map.ts';
import { dataserverClient } from './dataservers.ts';
import { chooseReplicaSet, chooseReplicaSetWith, uncoveredServer } from './placement.ts';
import { dsRef, type DataserverEntry, type Registry } from './registry.ts';
import type { PersistedSequence } from './sequence.ts';

export interface AllocatorDeps {
  blocks: BlockMap;
  registry: Registry;
  keys: PersistedSequence;
  blockIds: PersistedSequence;
  secret: string;
  log: Logger;
  metrics: Metrics;
  /** writable blocks to keep open per replica count; 0 = one per live data server */
  writableBlocks: number;
  /** no block is created before this time (recovery: every existing block id must be reported first) */
  createNotBefore?: number;
  /** the cluster id and state id, sent with each creation so its replicas learn the lease ends at once */
  identity?: { readonly clusterId: string | undefined; readonly stateId: string };
}

/** ids in a row found taken (409 on create) before a creation gives up */
const TAKEN_RETRIES = 8;

export const MAX_BLOCK_ID = 0xffffffffn;

/** Free bytes a server needs to take a new block: the largest block size among the live ones. */
function blockRoom(alive: readonly DataserverEntry[]): number {
  return Math.max(0, ...alive.map((d) => d.blockSize));
}
/** a server that refused a block made for it is not asked again for this long */
const COVERAGE_RETRY_MS = 30_000;
/** how long a computed pool of writable blocks is used; a block created meanwhile ends it */
export const POOL_TTL_MS = 500;
export { MAX_KEY };

export class Allocator {
  private readonly creating = new Map<number, Promise<BlockRecord | undefined>>();
  /** data server id → when a block made to cover it last failed */
  private readonly coverageFailedAt = new Map<string, number>();
  /** replica count → the writable blocks found at `at` (those found unwritable since are taken out) */
  private readonly pools = new Map<number, { at: number; recs: BlockRecord[] }>();

  constructor(private readonly d: AllocatorDeps) {}

  writable(replication: number, now = Date.now()): BlockRecord[] {
    return this.d.blocks.writableCandidates().filter((r) => r.replication === replication && this.d.blocks.isWritable(r, now));
  }

  private target(aliveCount: number): number {
    return this.d.writableBlocks > 0 ? this.d.writableBlocks : Math.max(1, aliveCount);
  }

  /** The pool for this replica count, computed again when older than POOL_TTL_MS or empty. */
  private pool(replication: number, now: number): BlockRecord[] {
    let p = this.pools.get(replication);
    if (p && now - p.at < POOL_TTL_MS && p.recs.length > 0) return p.recs;
    p = { at: now, recs: this.writable(replication, now) };
    this.pools.set(replication, p);
    // Coverage is looked at once per pool, not per assign: it walks the pool and the servers.
    const alive = this.d.registry.alive(now);
    const target = this.target(alive.length);
    if (p.recs.length >= target && p.recs.length < 2 * target) {
      const lonely = this.uncovered(replication, p.recs, alive, now);
      if (lonely) void this.grow(replication, lonely);
    }
    return p.recs;
  }

  /** A random block of the pool that is writable now; blocks found not to be leave the pool. */
  private pick(replication: number, now: number): BlockRecord | undefined {
    const recs = this.pool(replication, now);
    while (recs.length > 0) {
      const i = Math.floor(Math.random() * recs.length);
      // read again: the record may have changed since the pool was computed
      const rec = this.d.blocks.get(recs[i]!.id);
      if (rec && rec.replication === replication && this.d.blocks.isWritable(rec, now)) return rec;
      recs[i] = recs[recs.length - 1]!;
      recs.pop();
    }
    return undefined;
  }

  async assign(replication: number, count = 1): Promise<AssignResult> {
    const now = Date.now();
    let rec = this.pick(replication, now);
    if (!rec) {
      await this.grow(replication);
      rec = this.pick(replication, Date.now());
    }
    if (!rec) {
      throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `no writable block with ${replication} live replicas (live data servers: ${this.d.registry.alive(now).length})`);
    }
    if (this.pool(replication, now).length < this.target(this.d.registry.aliveCount(now))) void this.grow(replication);
    const keys: bigint[] = [];
    for (let i = 0; i < count; i++) keys.push(await this.d.keys.take());
    // Always the whole replica set: if one of them died meanwhile, the write fails and is
    // retried elsewhere, never acknowledged with fewer copies.
    const replicas = rec.replicas.map((id) => this.d.registry.get(id)).filter((d): d is DataserverEntry => d !== undefined);
    if (replicas.length !== rec.replication) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `block ${rec.id} lost a replica while being assigned`);
    this.d.metrics.assigns.inc(count);
    const fids = keys.map((key) => encodeFid({ block: rec.id, key, cookie: newCookie() }));
    return {
      fid: fids[0]!,
      block: rec.id,
      replicas: replicas.map(dsRef),
      ...(count > 1 ? { fids } : {}),
    };
  }

  /**
   * A live server with room that holds none of the pool's blocks (see uncoveredServer); the
   * pool may grow to twice its target to take it in, which bounds the extra open blocks.
   */
  private uncovered(replication: number, pool: readonly BlockRecord[], alive: readonly DataserverEntry[], now: number): DataserverEntry | undefined {
    if (alive.length < replication) return undefined;
    return uncoveredServer(alive, pool, blockRoom(alive), (id) => now - (this.coverageFailedAt.get(id) ?? -Infinity) < COVERAGE_RETRY_MS);
  }

  /**
   * Creates one block for this replica count unless a creation is already under way;
   * `include`, when given, is one of its replicas.
   */
  grow(replication: number, include?: DataserverEntry): Promise<BlockRecord | undefined> {
    let p = this.creating.get(replication);
    if (!p) {
      p = this.create(replication, include)
        .then((rec) => {
          if (include) this.coverageFailedAt.delete(include.id);
          // the new block joins the pool at the next assign
          this.pools.delete(replication);
          return rec;
        })
        .catch((err) => {
          if (include) this.coverageFailedAt.set(include.id, Date.now());
          this.d.log.warn({ err: (err as Error).message, replication, ...(include ? { include: include.id } : {}) }, 'block creation failed');
          return undefined;
        })
        .finally(() => this.creating.delete(replication));
      this.creating.set(replication, p);
    }
    return p;
  }

  private openLoad(now: number): Map<string, number> {
    const load = new Map<string, number>();
    for (const r of this.d.blocks.writableCandidates()) {
      if (!this.d.blocks.isWritable(r, now)) continue;
      for (const id of r.replicas) load.set(id, (load.get(id) ?? 0) + 1);
    }
    return load;
  }

  private async create(replication: number, include?: DataserverEntry): Promise<BlockRecord | undefined> {
    const now = Date.now();
    if (now < (this.d.createNotBefore ?? 0)) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'recovering: no new blocks until every data server has reported its blocks');
    const alive = this.d.registry.alive(now);
    const placement = { needBytes: blockRoom(alive), load: this.openLoad(now) };
    const first = include && alive.find((d) => d.id === include.id);
    if (include && !first) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `data server ${include.id} is no longer alive`);
    const set = first ? chooseReplicaSetWith(alive, replication, first, placement) : chooseReplicaSet(alive, replication, placement);
    if (!set) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `need ${replication} live data servers with room for a block, have ${alive.length}`);
    for (let attempt = 0; ; attempt++) {
      const created = await this.createWith(replication, set, attempt < TAKEN_RETRIES);
      if (created) return created;
    }
  }

  /**
   * One attempt with a fresh id. Undefined when the id turned out to be taken: a data server
   * answered 409 because it holds a non-empty block of that id this state never allocated
   * (a block from before a lost state, or another cluster's). That id is never used (the
   * sequence is past it) and that block is left alone; the caller tries the next id.
   */
  private async createWith(replication: number, set: DataserverEntry[], mayRetry: boolean): Promise<BlockRecord | undefined> {
    const id = Number(await this.d.blockIds.take());
    // Persisted as `creating` before any data server hears of it, so a report of this block
    // is always recognised as ours; a crash before it turns `writable` abandons it on restart.
    const rec: BlockRecord = { id, replication, state: 'creating', replicas: set.map((d) => d.id), createdAt: Date.now() };
    // Busy until every replica has created it: no assign may hand out a fid in it before.
    this.d.blocks.setBusy(id, 'creating');
    try {
      await this.d.blocks.put(rec);
      const results = await Promise.allSettled(set.map((ds) => this.createOn(ds, rec, set)));
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length > 0) {
        const taken = set.filter((_, i) => results[i]!.status === 'rejected' && isUgcfsError((results[i] as PromiseRejectedResult).reason, 'UGCFS_ERR_CONFLICT'));
        // Abandoned: the servers that created it drop their empty copy (told by heartbeat);
        // where the id was taken, the block there is not ours and is never touched.
        await this.d.blocks.put({ ...rec, state: 'abandoned', replicas: rec.replicas.filter((r) => !taken.some((t) => t.id === r)) });
        if (taken.length > 0) {
          this.d.log.warn({ block: id, dataservers: taken.map((t) => t.id) }, 'block id is taken: a data server holds a non-empty block of that id this name server never allocated; skipped, never used');
          if (taken.length === failed.length && mayRetry) return undefined;
        }
        const reason = (failed[0] as PromiseRejectedResult).reason as Error;
        throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `creating block ${id} failed on ${failed.length} of ${set.length} data servers: ${reason.message}`);
      }
      // The confirm window (counted as held before the first report) starts now.
      const created: BlockRecord = { ...rec, state: 'writable', createdAt: Date.now() };
      await this.d.blocks.put(created);
      this.d.log.info({ block: id, replicas: rec.replicas }, 'block created');
      return created;
    } finally {
      this.d.blocks.clearBusy(id);
    }
  }

  private createBody(peers: DataserverEntry[]): BlockCreate {
    const body: BlockCreate = { replicas: peers.map(dsRef) };
    const cluster = this.d.identity?.clusterId;
    if (cluster !== undefined) body.cluster = cluster;
    if (this.d.identity) body.state = this.d.identity.stateId;
    body.leasedUpTo = { blockIds: this.d.blockIds.leasedUpTo.toString(), keys: this.d.keys.leasedUpTo.toString() };
    return body;
  }

  private async createOn(ds: DataserverEntry, rec: BlockRecord, set: DataserverEntry[]): Promise<void> {
    await dataserverClient(this.d.registry, this.d.secret).createBlock(ds, rec.id, this.createBody(set.filter((d) => d.id !== ds.id)));
  }
}
