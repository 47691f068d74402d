// Every reported copy of every block (who holds what, and the copy's last report), in typed
// columns: ~55 bytes per copy, no object or map entry per copy. Copies of a block are
// chained from the block's head (a block has a few), copies on a server in a doubly linked
// list from the server's head, so a server's death walks its own copies only and one copy
// is found, added or removed in O(copies of its block).
import type { BlockReport } from '../src/wire/protocol.ts';
import { PagedColumn } from './paged-column.ts';

const NONE = -1;
const SEALED = 1;
const READONLY = 2;

export class CopyTable {
  private cap = 0;
  private used = 0;
  private freeHead = NONE;
  private live = 0;
  private block = new Uint32Array(0);
  private ds = new Uint16Array(0);
  private size = new Float64Array(0);
  private liveBytes = new Float64Array(0);
  private deletedBytes = new Float64Array(0);
  private liveCount = new Uint32Array(0);
  private gen = new Uint32Array(0);
  private flags = new Uint8Array(0);
  /** which full report last named the copy (report-intake.ts), so one ending forgets the others */
  private stamp = new Uint32Array(0);
  private nextInBlock = new Int32Array(0);
  private prevInDs = new Int32Array(0);
  private nextInDs = new Int32Array(0);
  private readonly blockHead = new PagedColumn(Int32Array, NONE);
  private dsHead = new Int32Array(0);
  private dsCount = new Uint32Array(0);

  /** Copies held in all. */
  get count(): number {
    return this.live;
  }

  /** Copies held by server `ds`. */
  countOf(ds: number): number {
    return ds < this.dsCount.length ? this.dsCount[ds]! : 0;
  }

  /** The slot of `ds`'s copy of `block`, or -1. */
  find(block: number, ds: number): number {
    for (let s = this.blockHead.get(block); s !== NONE; s = this.nextInBlock[s]!) if (this.ds[s] === ds) return s;
    return NONE;
  }

  has(block: number, ds: number): boolean {
    return this.find(block, ds) !== NONE;
  }

  /** True when `test` holds for some copy of `block`, given its server and flags; no report is materialised (the sweep asks this of every block). */
  someCopy(block: number, test: (ds: number, sealed: boolean, readonly: boolean) => boolean): boolean {
    for (let s = this.blockHead.get(block); s !== NONE; s = this.nextInBlock[s]!) {
      const f = this.flags[s]!;
      if (test(this.ds[s]!, (f & SEALED) !== 0, (f & READONLY) !== 0)) return true;
    }
    return false;
  }

  get(block: number, ds: number): BlockReport | undefined {
    const s = this.find(block, ds);
    return s === NONE ? undefined : this.report(s);
  }

  /** Records `ds`'s report of a copy (named by full report `stamp`, when given); returns the report it replaces, if any. */
  set(ds: number, r: BlockReport, stamp?: number): BlockReport | undefined {
    let s = this.find(r.id, ds);
    const old = s === NONE ? undefined : this.report(s);
    if (s === NONE) s = this.insert(r.id, ds);
    if (stamp !== undefined) this.stamp[s] = stamp;
    this.size[s] = r.size;
    this.liveBytes[s] = r.liveBytes;
    this.deletedBytes[s] = r.deletedBytes;
    this.liveCount[s] = r.liveCount;
    this.gen[s] = r.gen;
    this.flags[s] = (r.sealed ? SEALED : 0) | (r.readonly ? READONLY : 0);
    return old;
  }

  /** Forgets `ds`'s copy of `block`; returns its last report, if there was one. */
  remove(block: number, ds: number): BlockReport | undefined {
    let prev = NONE;
    let s = this.blockHead.get(block);
    while (s !== NONE && this.ds[s] !== ds) {
      prev = s;
      s = this.nextInBlock[s]!;
    }
    if (s === NONE) return undefined;
    const old = this.report(s);
    if (prev === NONE) this.blockHead.set(block, this.nextInBlock[s]!);
    else this.nextInBlock[prev] = this.nextInBlock[s]!;
    const p = this.prevInDs[s]!;
    const n = this.nextInDs[s]!;
    if (p === NONE) this.dsHead[ds] = n;
    else this.nextInDs[p] = n;
    if (n !== NONE) this.prevInDs[n] = p;
    this.dsCount[ds]!--;
    this.nextInBlock[s] = this.freeHead;
    this.freeHead = s;
    this.live--;
    return old;
  }

  report(s: number): BlockReport {
    const f = this.flags[s]!;
    return {
      id: this.block[s]!,
      size: this.size[s]!,
      liveCount: this.liveCount[s]!,
      liveBytes: this.liveBytes[s]!,
      deletedBytes: this.deletedBytes[s]!,
      sealed: (f & SEALED) !== 0,
      readonly: (f & READONLY) !== 0,
      gen: this.gen[s]!,
    };
  }

  /** Size in bytes of `ds`'s copy of `block` (0 when none). */
  sizeOf(block: number, ds: number): number {
    const s = this.find(block, ds);
    return s === NONE ? 0 : this.size[s]!;
  }

  /** Block ids of server `ds`'s copies (a snapshot: safe to change the table while using it). */
  blocksOf(ds: number): number[] {
    const out: number[] = [];
    if (ds >= this.dsHead.length) return out;
    for (let s = this.dsHead[ds]!; s !== NONE; s = this.nextInDs[s]!) out.push(this.block[s]!);
    return out;
  }

  /** Block ids of `ds`'s copies that full report `stamp` did not name. */
  blocksNotStamped(ds: number, stamp: number): number[] {
    const out: number[] = [];
    if (ds >= this.dsHead.length) return out;
    for (let s = this.dsHead[ds]!; s !== NONE; s = this.nextInDs[s]!) if (this.stamp[s] !== stamp) out.push(this.block[s]!);
    return out;
  }

  /** Server numbers holding a copy of `block`. */
  holdersOf(block: number): number[] {
    const out: number[] = [];
    for (let s = this.blockHead.get(block); s !== NONE; s = this.nextInBlock[s]!) out.push(this.ds[s]!);
    return out;
  }

  /** Bytes of the columns (the bench's and the status page's memory figure). */
  bytes(): number {
    return this.cap * 55 + this.blockHead.bytes() + this.dsHead.byteLength + this.dsCount.byteLength;
  }

  private insert(block: number, ds: number): number {
    let s = this.freeHead;
    if (s !== NONE) this.freeHead = this.nextInBlock[s]!;
    else {
      if (this.used === this.cap) this.grow();
      s = this.used++;
    }
    this.ensureServer(ds);
    this.block[s] = block;
    this.ds[s] = ds;
    this.stamp[s] = 0;
    this.nextInBlock[s] = this.blockHead.get(block);
    this.blockHead.set(block, s);
    const head = this.dsHead[ds]!;
    this.prevInDs[s] = NONE;
    this.nextInDs[s] = head;
    if (head !== NONE) this.prevInDs[head] = s;
    this.dsHead[ds] = s;
    this.dsCount[ds]!++;
    this.live++;
    return s;
  }

  private ensureServer(ds: number): void {
    if (ds < this.dsHead.length) return;
    const n = Math.max(16, ds + 1, this.dsHead.length * 2);
    const head = new Int32Array(n).fill(NONE);
    head.set(this.dsHead);
    const count = new Uint32Array(n);
    count.set(this.dsCount);
    this.dsHead = head;
    this.dsCount = count;
  }

  private grow(): void {
    const cap = Math.max(1024, Math.ceil(this.cap * 1.5));
    const g = <T extends Uint32Array | Uint16Array | Float64Array | Uint8Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const a = make(cap);
      a.set(old as never);
      return a;
    };
    this.block = g(this.block, (n) => new Uint32Array(n));
    this.ds = g(this.ds, (n) => new Uint16Array(n));
    this.size = g(this.size, (n) => new Float64Array(n));
    this.liveBytes = g(this.liveBytes, (n) => new Float64Array(n));
    this.deletedBytes = g(this.deletedBytes, (n) => new Float64Array(n));
    this.liveCount = g(this.liveCount, (n) => new Uint32Array(n));
    this.gen = g(this.gen, (n) => new Uint32Array(n));
    this.flags = g(this.flags, (n) => new Uint8Array(n));
    this.stamp = g(this.stamp, (n) => new Uint32Array(n));
    this.nextInBlock = g(this.nextInBlock, (n) => new Int32Array(n));
    this.prevInDs = g(this.prevInDs, (n) => new Int32Array(n));
    this.nextInDs = g(this.nextInDs, (n) => new Int32Array(n));
    this.cap = cap;
  }
}
