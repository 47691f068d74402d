// Which blocks exist and who holds them. The name server persists what it decided (each
// allocated block, its replica count, its state, and the data servers meant to hold it);
// who actually holds a copy comes from block reports, so after a restart the map is
// rebuilt from the first heartbeats. A copy counts only when both agree: a server that
// reports a block it was never given is not trusted as a holder.
import { UgcfsError } from '../src/base/errors.ts';
import type { BlockLocation } from '../src/wire/protocol.ts';
import { dsRef, type DataserverEntry, type Registry } from './registry.ts';
import type { Namespace } from './metadata-store/index.ts';

/**
 * creating: persisted before any data server hears of it, and until every replica has
 * created it; no fid is handed out in it. writable: takes new files. sealed: full or
 * repaired, read-only for ever. failed: a write to it failed, read-only for ever.
 * abandoned: creation failed on some server, or a name server died while creating it
 * (`load` turns a left-over `creating` into this); holds no files and any copy reported is
 * deleted.
 */
export type BlockState = 'creating' | 'writable' | 'sealed' | 'failed' | 'abandoned';

/** States of blocks that hold no file and never will. */
const EMPTY_STATES: ReadonlySet<BlockState> = new Set(['creating', 'abandoned']);

/** False for blocks that hold no file (being created, or abandoned). */
export function mayHoldFiles(rec: BlockRecord): boolean {
  return !EMPTY_STATES.has(rec.state);
}

export interface BlockRecord {
  id: number;
  replication: number;
  state: BlockState;
  /** data server ids meant to hold it; [0] is the primary for writes */
  replicas: string[];
  createdAt: number;
}

export class BlockMap {
  private readonly records = new Map<number, BlockRecord>();
  private readonly writableIds = new Set<number>();
  /** transient reasons a block takes no writes and is left alone by reconciliation */
  private readonly busy = new Map<number, string>();
  private readonly busyDeletes = new Map<number, Set<string>>();
  /** `${block}/${ds}` -> until when a copy just made there counts before its server reports it */
  private readonly copiedUntil = new Map<string, number>();

  constructor(
    private readonly store: Namespace<BlockRecord>,
    private readonly registry: Registry,
    /** how long a freshly created block counts as held before reports confirm it */
    private readonly confirmWindowMs: number,
  ) {}

  /** Reads every record (writes nothing: a standby loads too). */
  async load(): Promise<void> {
    for await (const [, rec] of this.store.iterator()) this.index(rec);
  }

  /**
   * On becoming leader: a name server that died mid-creation handed out no fid in the
   * block, but some server may never have heard of it: holding no copy, it would count as
   * lost for ever. Such blocks are abandoned.
   */
  async takeOver(): Promise<void> {
    for (const rec of [...this.records.values()]) if (rec.state === 'creating') await this.put({ ...rec, state: 'abandoned' });
  }

  /** A standby follows the leader's change of a record (state-follow.ts). */
  apply(key: string, value: unknown): void {
    if (value === undefined) {
      this.records.delete(Number(key));
      this.writableIds.delete(Number(key));
    } else this.index(value as BlockRecord);
  }

  /** Records of every state, abandoned ones included: 0 means this state never allocated or adopted a block. */
  get size(): number {
    return this.records.size;
  }

  has(id: number): boolean {
    return this.records.has(id);
  }

  get(id: number): BlockRecord | undefined {
    return this.records.get(id);
  }

  /** Throws UGCFS_ERR_BLOCK_NOT_FOUND for blocks this name server never allocated. */
  require(id: number): BlockRecord {
    const rec = this.records.get(id);
    if (!rec || !mayHoldFiles(rec)) throw new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${id} is unknown to the name server`);
    return rec;
  }

  /** Every block that holds (or may hold) files. */
  all(): BlockRecord[] {
    return [...this.records.values()].filter(mayHoldFiles);
  }

  async put(rec: BlockRecord): Promise<void> {
    await this.store.put(String(rec.id), rec);
    this.index(rec);
  }

  /** Blocks in state `writable` (a small set; assignment scans only these). */
  writableCandidates(): BlockRecord[] {
    return [...this.writableIds].map((id) => this.records.get(id)!);
  }

  private index(rec: BlockRecord): void {
    this.records.set(rec.id, rec);
    if (rec.state === 'writable') this.writableIds.add(rec.id);
    else this.writableIds.delete(rec.id);
  }

  async setState(id: number, state: BlockState): Promise<void> {
    const rec = this.records.get(id);
    if (!rec || rec.state === state) return;
    await this.put({ ...rec, state });
  }

  async setReplicas(id: number, replicas: string[]): Promise<void> {
    const rec = this.require(id);
    await this.put({ ...rec, replicas: [...new Set(replicas)] });
  }

  async addReplica(id: number, dsId: string): Promise<void> {
    const rec = this.require(id);
    if (!rec.replicas.includes(dsId)) await this.put({ ...rec, replicas: [...rec.replicas, dsId] });
  }

  async removeReplica(id: number, dsId: string): Promise<void> {
    const rec = this.require(id);
    if (rec.replicas.includes(dsId)) await this.put({ ...rec, replicas: rec.replicas.filter((r) => r !== dsId) });
  }

  /** Marks a block busy (repairing, moving, compacting...): no writes, no reconciliation. */
  setBusy(id: number, reason: string): void {
    this.busy.set(id, reason);
  }

  clearBusy(id: number): void {
    this.busy.delete(id);
    this.busyDeletes.delete(id);
  }

  /** Notes a delete that happened while the block was busy (a copy in flight may miss it). */
  noteBusyDelete(id: number, fid: string): void {
    if (!this.busy.has(id)) return;
    let s = this.busyDeletes.get(id);
    if (!s) this.busyDeletes.set(id, (s = new Set()));
    s.add(fid);
  }

  /** The deletes noted since the block became busy; whoever copied it replays them to the copy. */
  takeBusyDeletes(id: number): string[] {
    const s = this.busyDeletes.get(id);
    this.busyDeletes.delete(id);
    return s ? [...s] : [];
  }

  busyReason(id: number): string | undefined {
    return this.busy.get(id);
  }

  /**
   * Counts a copy just made on a server (a repair's pull answered) before that server's next
   * heartbeat reports it; otherwise the block looks under-replicated for a beat and is
   * copied again.
   */
  noteCopied(id: number, dsId: string, now = Date.now()): void {
    this.copiedUntil.set(`${id}/${dsId}`, now + this.confirmWindowMs);
  }

  /** True when this data server's copy counts: it is meant to hold it and reported it (or just created or copied it). */
  holds(ds: DataserverEntry, rec: BlockRecord, now = Date.now()): boolean {
    if (!rec.replicas.includes(ds.id)) return false;
    if (ds.reports.has(rec.id) || now - rec.createdAt < this.confirmWindowMs) return true;
    const k = `${rec.id}/${ds.id}`;
    const until = this.copiedUntil.get(k);
    if (until === undefined) return false;
    if (until > now) return true;
    this.copiedUntil.delete(k);
    return false;
  }

  /** Live data servers holding a counted copy, in replica-set order. */
  liveHolders(rec: BlockRecord, now = Date.now()): DataserverEntry[] {
    const out: DataserverEntry[] = [];
    for (const id of rec.replicas) {
      const ds = this.registry.get(id);
      if (ds && this.registry.isAlive(ds, now) && this.holds(ds, rec, now)) out.push(ds);
    }
    return out;
  }

  /** Replica-set members that do not currently count as live copies. */
  absentReplicas(rec: BlockRecord, now = Date.now()): string[] {
    const live = new Set(this.liveHolders(rec, now).map((d) => d.id));
    return rec.replicas.filter((id) => !live.has(id));
  }

  isFull(rec: BlockRecord): boolean {
    for (const id of rec.replicas) {
      const ds = this.registry.get(id);
      const rep = ds?.reports.get(rec.id);
      if (rep && (rep.sealed || (ds!.blockSize > 0 && rep.size >= ds!.blockSize * 0.95))) return true;
    }
    return false;
  }

  isWritable(rec: BlockRecord, now = Date.now()): boolean {
    if (rec.state !== 'writable' || this.busy.has(rec.id) || this.isFull(rec)) return false;
    if (rec.replicas.length !== rec.replication) return false;
    const holders = this.liveHolders(rec, now);
    if (holders.length !== rec.replication) return false;
    return holders.every((d) => !d.draining && !d.reports.get(rec.id)?.readonly);
  }

  stateOf(rec: BlockRecord, now = Date.now()): string {
    const busy = this.busy.get(rec.id);
    if (busy) return busy;
    if (rec.state === 'writable' && !this.isWritable(rec, now)) return 'readonly';
    return rec.state;
  }

  /** Blocks with fewer live copies than their replica count. */
  underReplicated(now = Date.now()): BlockRecord[] {
    return this.all().filter((r) => this.liveHolders(r, now).length < r.replication);
  }

  location(id: number, now = Date.now(), exclude?: (ds: DataserverEntry) => boolean): BlockLocation & { absent: string[] } {
    const rec = this.require(id);
    const holders = this.liveHolders(rec, now).filter((d) => !exclude?.(d));
    return {
      block: id,
      replicas: holders.map(dsRef),
      writable: this.isWritable(rec, now),
      state: this.stateOf(rec, now),
      // Left-out holders count as absent too, so a delete still gets recorded for them.
      absent: rec.replicas.filter((r) => !holders.some((d) => d.id === r)),
    };
  }
}
