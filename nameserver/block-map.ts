// Which blocks exist and who holds them. The name server persists what it decided (each
// allocated block, its replica count, its state, and the data servers meant to hold it);
// who actually holds a copy comes from block reports, so after a restart the map is
// rebuilt from the first heartbeats. A copy counts only when both agree: a server that
// reports a block it was never given is not trusted as a holder.
//
// Work is proportional to change: records live in typed columns (block-table.ts), copies
// in the registry's copy table (copy-table.ts), and the set of under-replicated blocks is
// kept up to date by events — a record changed, a copy reported or gone, a server died or
// came back, a confirm window ran out — never by walking every block per tick.
import { UgcfsError } from '../src/base/errors.ts';
import type { BlockLocation, BlockReport } from '../src/wire/protocol.ts';
import { dsRef, type DataserverEntry, type Registry } from './registry.ts';
import type { Namespace } from './metadata-store/index.ts';
import { BlockTable } from './block-table.ts';
import { UnderReplicated } from './under-replicated.ts';
import { BusyBlocks } from './busy-blocks.ts';

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
  /** bumped by every change of `replicas` (clients drop cached locations older than it); absent = 0 */
  version?: number;
}

export class BlockMap {
  private readonly table: BlockTable;
  private readonly writableIds = new Set<number>();
  /** records that may hold files (not creating, not abandoned) */
  private holding = 0;
  /** transient reasons a block takes no writes and is left alone by reconciliation */
  private readonly busy = new BusyBlocks();
  /** `${block}/${ds}` -> until when a copy just made there counts before its server reports it */
  private readonly copiedUntil = new Map<string, number>();
  private readonly movedHooks: Array<(block: number, version: number) => void> = [];
  private readonly changeHooks: Array<(block: number) => void> = [];
  private readonly droppedHooks: Array<(dsId: string, last: BlockReport) => void> = [];
  /** the under-replicated set, kept by events */
  private readonly under: UnderReplicated;

  constructor(
    private readonly store: Namespace<BlockRecord>,
    private readonly registry: Registry,
    /** how long a freshly created block counts as held before reports confirm it */
    private readonly confirmWindowMs: number,
  ) {
    this.table = new BlockTable(registry.servers);
    this.under = new UnderReplicated(registry, (id, now) => this.short(id, now), () => this.writableIds);
  }

  /** Reads every record (writes nothing: a standby loads too). */
  async load(): Promise<void> {
    for await (const page of this.store.iterator().pages()) for (const [, rec] of page) this.index(rec, false);
  }

  /**
   * On becoming leader: a name server that died mid-creation handed out no fid in the
   * block, but some server may never have heard of it: holding no copy, it would count as
   * lost for ever. Such blocks are abandoned.
   */
  async takeOver(): Promise<void> {
    const creating: BlockRecord[] = [];
    for (const id of this.table.ids()) if (this.table.stateOf(id) === 'creating') creating.push(this.table.get(id)!);
    for (const rec of creating) await this.put({ ...rec, state: 'abandoned' });
  }

  /** A standby follows the leader's change of a record (state-follow.ts). */
  apply(key: string, value: unknown): void {
    if (value === undefined) {
      const id = Number(key);
      const rec = this.table.get(id);
      if (rec && mayHoldFiles(rec)) this.holding--;
      this.table.delete(id);
      this.writableIds.delete(id);
      this.under.forget(id);
    } else this.index(value as BlockRecord);
  }

  /** Called with (block, new version) whenever this name server changes a block's replica set. */
  onMoved(fn: (block: number, version: number) => void): void {
    this.movedHooks.push(fn);
  }

  /** Called with the block id whenever a record changes (here or by following the leader). */
  onChange(fn: (block: number) => void): void {
    this.changeHooks.push(fn);
  }

  /** Records of every state, abandoned ones included: 0 means this state never allocated or adopted a block. */
  get size(): number {
    return this.table.size;
  }

  /** Records that hold (or may hold) files. */
  get holdingCount(): number {
    return this.holding;
  }

  has(id: number): boolean {
    return this.table.has(id);
  }

  get(id: number): BlockRecord | undefined {
    return this.table.get(id);
  }

  /** Throws UGCFS_ERR_BLOCK_NOT_FOUND for blocks this name server never allocated. */
  require(id: number): BlockRecord {
    const rec = this.table.get(id);
    if (!rec || !mayHoldFiles(rec)) throw new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${id} is unknown to the name server`);
    return rec;
  }

  /** Every block that holds (or may hold) files. Walks the whole map: operator commands and status only. */
  all(): BlockRecord[] {
    const out: BlockRecord[] = [];
    for (const id of this.table.ids()) {
      const rec = this.table.get(id)!;
      if (mayHoldFiles(rec)) out.push(rec);
    }
    return out;
  }

  /** Block ids with a record from `from` on, at most `limit` (a sweep's slice). */
  idsFrom(from: number, limit: number): number[] {
    return this.table.slice(from, limit);
  }

  async put(rec: BlockRecord): Promise<void> {
    await this.store.put(String(rec.id), rec);
    this.index(rec);
  }

  /** Blocks in state `writable` (a small set; assignment scans only these). */
  writableCandidates(): BlockRecord[] {
    return [...this.writableIds].map((id) => this.table.get(id)!);
  }

  private index(rec: BlockRecord, notify = true): void {
    const before = this.table.stateOf(rec.id);
    if (before !== undefined && !EMPTY_STATES.has(before)) this.holding--;
    this.table.set(rec);
    if (mayHoldFiles(rec)) this.holding++;
    if (rec.state === 'writable') this.writableIds.add(rec.id);
    else this.writableIds.delete(rec.id);
    if (rec.createdAt + this.confirmWindowMs > Date.now()) this.under.recheckAt(rec.createdAt + this.confirmWindowMs, rec.id);
    // Loading counts nothing: no server has reported yet, and the first reports (or the
    // sweep, for blocks nobody reports) count each block; until then it is uncounted and
    // shows as under-replicated.
    if (!notify) {
      if (mayHoldFiles(rec)) this.under.markUncounted(rec.id);
      return;
    }
    this.refresh(rec.id);
    for (const fn of this.changeHooks) fn(rec.id);
  }

  async setState(id: number, state: BlockState): Promise<void> {
    const rec = this.table.get(id);
    if (!rec || rec.state === state) return;
    await this.put({ ...rec, state });
  }

  async setReplicas(id: number, replicas: string[]): Promise<void> {
    const rec = this.require(id);
    await this.move(rec, [...new Set(replicas)]);
  }

  async addReplica(id: number, dsId: string): Promise<void> {
    const rec = this.require(id);
    if (!rec.replicas.includes(dsId)) await this.move(rec, [...rec.replicas, dsId]);
  }

  async removeReplica(id: number, dsId: string): Promise<void> {
    const rec = this.require(id);
    if (rec.replicas.includes(dsId)) await this.move(rec, rec.replicas.filter((r) => r !== dsId));
  }

  /** A new replica set, with the version bumped so clients drop the locations they cached. */
  private async move(rec: BlockRecord, replicas: string[]): Promise<void> {
    if (replicas.length === rec.replicas.length && replicas.every((r, i) => r === rec.replicas[i])) return;
    const version = (rec.version ?? 0) + 1;
    await this.put({ ...rec, replicas, version });
    for (const fn of this.movedHooks) fn(rec.id, version);
  }

  /** Marks a block busy (repairing, moving, compacting...): no writes, no reconciliation. */
  setBusy(id: number, reason: string): void {
    this.busy.set(id, reason);
  }

  clearBusy(id: number): void {
    this.busy.clear(id);
  }

  /** Notes a delete that happened while the block was busy (a copy in flight may miss it). */
  noteBusyDelete(id: number, fid: string): void {
    this.busy.noteDelete(id, fid);
  }

  /** The deletes noted since the block became busy; whoever copied it replays them to the copy. */
  takeBusyDeletes(id: number): string[] {
    return this.busy.takeDeletes(id);
  }

  busyReason(id: number): string | undefined {
    return this.busy.reason(id);
  }

  /**
   * Counts a copy just made on a server (a repair's pull answered) before that server's next
   * heartbeat reports it; otherwise the block looks under-replicated for a beat and is
   * copied again.
   */
  noteCopied(id: number, dsId: string, now = Date.now()): void {
    this.copiedUntil.set(`${id}/${dsId}`, now + this.confirmWindowMs);
    this.under.recheckAt(now + this.confirmWindowMs, id);
    this.refresh(id, now);
  }

  /** A data server's report of its copy of a block (report-intake.ts); returns the report it replaces. */
  setCopy(dsId: string, report: BlockReport, stamp?: number): BlockReport | undefined {
    const old = this.registry.copies.set(this.registry.servers.of(dsId), report, stamp);
    if (!old) this.refresh(report.id);
    return old;
  }

  /**
   * A copy is gone: reported gone (`byReport`), or deleted by the name server's own order
   * (a move re-copies it), whose report the intake must still account for.
   */
  removeCopy(dsId: string, block: number, byReport = false): BlockReport | undefined {
    const n = this.registry.servers.find(dsId);
    if (n < 0) return undefined;
    const old = this.registry.copies.remove(block, n);
    if (!old) return undefined;
    this.refresh(block);
    if (!byReport) for (const fn of this.droppedHooks) fn(dsId, old);
    return old;
  }

  /** How many of a server's reported copies count (it is in the block's replica set). O(its copies). */
  countHeld(ds: DataserverEntry): number {
    const n = this.registry.servers.find(ds.id);
    if (n < 0) return 0;
    let count = 0;
    for (const id of this.registry.copies.blocksOf(n)) {
      const state = this.table.stateOf(id);
      if (state !== undefined && !EMPTY_STATES.has(state) && this.table.replicaNumbers(id).includes(n)) count++;
    }
    return count;
  }

  /** Called when a copy is dropped other than by its server's report. */
  onCopyDropped(fn: (dsId: string, last: BlockReport) => void): void {
    this.droppedHooks.push(fn);
  }

  /**
   * True when the block may hold files and fewer than its replica count of copies count now:
   * liveHolders' rule, read straight from the columns (this runs for every copy reported).
   */
  private short(id: number, now: number): boolean {
    const state = this.table.stateOf(id);
    if (state === undefined || EMPTY_STATES.has(state)) return false;
    const fresh = now - this.table.createdAtOf(id) < this.confirmWindowMs;
    let live = 0;
    for (let i = 0, n = this.table.replicaCount(id); i < n; i++) {
      const num = this.table.replicaAt(id, i);
      const ds = this.registry.byNumber(num);
      if (!ds || !this.registry.isAlive(ds, now)) continue;
      if (fresh || this.registry.copies.has(id, num) || (this.copiedUntil.size > 0 && (this.copiedUntil.get(`${id}/${ds.id}`) ?? 0) > now)) live++;
    }
    return live < this.table.replicationOf(id);
  }

  /** Whether `dsId` is in the replica set of block `id` (no record materialised). */
  isReplica(id: number, dsId: string): boolean {
    const num = this.registry.servers.find(dsId);
    if (num < 0) return false;
    for (let i = 0, n = this.table.replicaCount(id); i < n; i++) if (this.table.replicaAt(id, i) === num) return true;
    return false;
  }

  /** The state of block `id`'s record, if it has one (no record materialised). */
  stateOfRecord(id: number): BlockState | undefined {
    return this.table.stateOf(id);
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
    if (rec.state !== 'writable' || this.busy.reason(rec.id) !== undefined || this.isFull(rec)) return false;
    if (rec.replicas.length !== rec.replication) return false;
    const holders = this.liveHolders(rec, now);
    if (holders.length !== rec.replication) return false;
    return holders.every((d) => !d.draining && !d.reports.get(rec.id)?.readonly);
  }

  stateOf(rec: BlockRecord, now = Date.now()): string {
    const busy = this.busy.reason(rec.id);
    if (busy) return busy;
    if (rec.state === 'writable' && !this.isWritable(rec, now)) return 'readonly';
    return rec.state;
  }

  /** The oldest block that became under-replicated lately, each handed out once; `forgetNews` drops them all (under-replicated.ts). */
  newlyUnderReplicated = (): number | undefined => this.under.takeFresh();
  forgetNews = (): void => this.under.clearFresh();
  /** Ids of blocks with fewer live copies than their replica count (kept by events; see tick). */
  underReplicatedIds = (): ReadonlySet<number> => this.under.ids();

  /** Blocks with fewer live copies than their replica count (and those not counted since start). */
  underReplicatedCount(now = Date.now()): number {
    this.tick(now);
    return this.under.count();
  }

  /** Re-counts one block's live copies. */
  refresh = (id: number, now = Date.now()): void => this.under.refresh(id, now);

  /** The time-driven events (under-replicated.ts): ended confirm windows, servers that died or came back. */
  tick = (now = Date.now()): void => this.under.tick(now);

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
      version: rec.version ?? 0,
    };
  }

  /** Bytes of the in-memory block and copy tables (status, bench). */
  tableBytes(): number {
    return this.table.bytes() + this.registry.copies.bytes();
  }
}
