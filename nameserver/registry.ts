// Data servers known to the name server. Identity (id, url, rack, draining) is persisted so
// `status` lists a server that is down across a name-server restart; liveness, space and
// block reports live in memory and come back with the next heartbeat. The copies every
// server reported are in one compact table (copy-table.ts); an entry's `reports` is a view
// of its own.
import { UgcfsError } from '../src/base/errors.ts';
import type { BlockReport, DsRef, Heartbeat, QuarantineSummary } from '../src/wire/protocol.ts';
import type { Namespace } from './metadata-store/index.ts';
import { CopyTable } from './copy-table.ts';
import { ServerIndex } from './server-index.ts';

export interface PersistedDataserver {
  id: string;
  url: string;
  rack: string;
  draining: boolean;
}

export interface DataserverEntry extends PersistedDataserver {
  freeBytes: number;
  usedBytes: number;
  blockSize: number;
  /** ms timestamp of the last heartbeat; 0 when none since this name server started */
  lastSeen: number;
  /** its copies' last reports, by block id (allocated blocks only) */
  reports: CopyReports;
  /** what its quarantine/ held at the last heartbeat */
  quarantine?: QuarantineSummary;
}

export interface BeatResult {
  entry: DataserverEntry;
  /** first heartbeat since it was dead, unknown, or this name server started */
  returned: boolean;
}

/** One server's copies, read from the registry's copy table (changed through BlockMap only). */
export class CopyReports {
  constructor(
    private readonly copies: CopyTable,
    private readonly n: number,
  ) {}

  get(block: number): BlockReport | undefined {
    return this.copies.get(block, this.n);
  }

  has(block: number): boolean {
    return this.copies.has(block, this.n);
  }

  get size(): number {
    return this.copies.countOf(this.n);
  }

  /** Block ids of its copies (a snapshot). */
  keys(): number[] {
    return this.copies.blocksOf(this.n);
  }

  *[Symbol.iterator](): Generator<[number, BlockReport]> {
    for (const id of this.copies.blocksOf(this.n)) {
      const r = this.copies.get(id, this.n);
      if (r) yield [id, r];
    }
  }
}

export class Registry {
  private readonly entries = new Map<string, DataserverEntry>();
  /** a small number per server id, for the block and copy tables */
  readonly servers = new ServerIndex();
  /** every copy every server reported */
  readonly copies = new CopyTable();
  /** entries by server number (byNumber runs per reported copy) */
  private readonly numbered: Array<DataserverEntry | undefined> = [];
  /** ids whose identity changed while this name server was a standby: persisted on take-over */
  private readonly unsaved = new Set<string>();

  constructor(
    private readonly store: Namespace<PersistedDataserver>,
    private readonly deadAfterMs: number,
    private readonly startedAt: number,
  ) {}

  async load(): Promise<void> {
    for await (const [id, p] of this.store.iterator()) {
      this.entries.set(id, this.entry(p));
    }
  }

  private entry(p: PersistedDataserver): DataserverEntry {
    const n = this.servers.of(p.id);
    const e: DataserverEntry = { id: p.id, url: p.url, rack: p.rack, draining: p.draining, freeBytes: 0, usedBytes: 0, blockSize: 0, lastSeen: 0, reports: new CopyReports(this.copies, n) };
    this.numbered[n] = e;
    return e;
  }

  /**
   * Records a heartbeat's liveness and space (its block report is applied by heartbeat.ts).
   * A standby (`persist` false) keeps a new or moved server in memory only; the leader
   * persists it.
   */
  async beat(hb: Heartbeat, now: number, persist = true): Promise<BeatResult> {
    let entry = this.entries.get(hb.id);
    const returned = !entry || !this.isAlive(entry, now);
    let changed = false;
    if (!entry) {
      entry = this.entry({ id: hb.id, url: hb.url, rack: hb.rack, draining: false });
      this.entries.set(hb.id, entry);
      changed = true;
    } else if (entry.url !== hb.url || entry.rack !== hb.rack) {
      // Data servers started with --port 0 come back on a new port; the id is what counts.
      entry.url = hb.url;
      entry.rack = hb.rack;
      changed = true;
    }
    if (changed || (persist && this.unsaved.has(entry.id))) {
      if (persist) await this.persist(entry);
      else this.unsaved.add(entry.id);
    }
    entry.freeBytes = hb.freeBytes;
    entry.usedBytes = hb.usedBytes;
    entry.blockSize = hb.blockSize;
    entry.lastSeen = now;
    entry.quarantine = hb.quarantine;
    return { entry, returned };
  }

  /**
   * A member that turned out to be of another cluster (its heartbeats, from the same URL,
   * are refused now) is dead from this moment: no block is placed on it, no read sent
   * there, while its copies count as lost after the repair delay as for any dead server.
   * Another server that merely has the same id (a different URL) changes nothing here.
   */
  expire(id: string, url: string, now = Date.now()): void {
    const e = this.entries.get(id);
    if (e && e.url === url && this.isAlive(e, now)) e.lastSeen = now - this.deadAfterMs - 1;
  }

  isAlive(e: DataserverEntry, now = Date.now()): boolean {
    return e.lastSeen > 0 && now - e.lastSeen <= this.deadAfterMs;
  }

  /** When it stopped being alive (for servers not seen since start: our start time). */
  deadSince(e: DataserverEntry): number {
    return e.lastSeen > 0 ? e.lastSeen + this.deadAfterMs : this.startedAt;
  }

  get(id: string): DataserverEntry | undefined {
    return this.entries.get(id);
  }

  /** Block ids of a server's copies that full report `stamp` did not name. */
  copyIdsNotStamped(dsId: string, stamp: number): number[] {
    const n = this.servers.find(dsId);
    return n < 0 ? [] : this.copies.blocksNotStamped(n, stamp);
  }

  /** A server's copies' reports. O(its copies). */
  copiesOf(dsId: string): BlockReport[] {
    const n = this.servers.find(dsId);
    if (n < 0) return [];
    const out: BlockReport[] = [];
    for (const id of this.copies.blocksOf(n)) out.push(this.copies.get(id, n)!);
    return out;
  }

  /** The entry of server number `n` (server-index.ts), if it is known. */
  byNumber(n: number): DataserverEntry | undefined {
    const e = this.numbered[n];
    return e !== undefined && this.entries.get(e.id) === e ? e : this.entries.get(this.servers.idOf(n));
  }

  /** Throws UGCFS_ERR_DATASERVER_NOT_FOUND for ids never registered. */
  require(id: string): DataserverEntry {
    const e = typeof id === 'string' ? this.entries.get(id) : undefined;
    if (!e) throw new UgcfsError('UGCFS_ERR_DATASERVER_NOT_FOUND', `no data server with id ${JSON.stringify(String(id).slice(0, 80))}`);
    return e;
  }

  list(): DataserverEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  alive(now = Date.now()): DataserverEntry[] {
    return this.list().filter((e) => this.isAlive(e, now));
  }

  /** How many are alive, without listing them (every assign asks). */
  aliveCount(now = Date.now()): number {
    let n = 0;
    for (const e of this.entries.values()) if (this.isAlive(e, now)) n++;
    return n;
  }

  /** A draining server gets no new blocks and no repair copies (ops moves its blocks off). */
  async setDraining(id: string, draining: boolean): Promise<void> {
    const e = this.require(id);
    e.draining = draining;
    await this.persist(e);
  }

  /** Forgets a server that is not alive (e.g. a machine retired for good). */
  async forget(id: string, now = Date.now()): Promise<void> {
    const e = this.require(id);
    if (this.isAlive(e, now)) throw new UgcfsError('UGCFS_ERR_CONFLICT', `data server ${id} is alive; stop it before forgetting it`);
    this.entries.delete(id);
    this.dropCopies(id);
    await this.store.del(id);
  }

  /** A forgotten server's copies (dead, so they counted for nothing already). */
  private dropCopies(id: string): void {
    const n = this.servers.find(id);
    if (n >= 0) for (const block of this.copies.blocksOf(n)) this.copies.remove(block, n);
  }

  /** On becoming leader: persists what was learnt from heartbeats while a standby. */
  async takeOver(): Promise<void> {
    for (const id of [...this.unsaved]) {
      const e = this.entries.get(id);
      if (e) await this.persist(e);
    }
  }

  /** A standby follows the leader's change of a server's identity (state-follow.ts). */
  apply(id: string, value: unknown): void {
    if (value === undefined) {
      this.entries.delete(id);
      this.unsaved.delete(id);
      this.dropCopies(id);
      return;
    }
    const p = value as PersistedDataserver;
    const e = this.entries.get(id);
    if (!e) this.entries.set(id, this.entry(p));
    else {
      // A heartbeat seen here may be newer than the leader's record: the URL stays ours;
      // once the leader's record says the same, there is nothing left to persist on take-over.
      if (!this.unsaved.has(id)) {
        e.url = p.url;
        e.rack = p.rack;
      } else if (e.url === p.url && e.rack === p.rack) this.unsaved.delete(id);
      e.draining = p.draining;
    }
  }

  // Synced: a registration, a drain and a forget are acknowledged (to the data server, to an
  // operator) after this; all are rare, so the sync costs nothing that matters.
  private async persist(e: DataserverEntry): Promise<void> {
    await this.store.put(e.id, { id: e.id, url: e.url, rack: e.rack, draining: e.draining });
    this.unsaved.delete(e.id);
  }
}

export function dsRef(e: DataserverEntry): DsRef {
  return { id: e.id, url: e.url, rack: e.rack };
}
