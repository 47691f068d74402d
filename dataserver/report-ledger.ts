// This data server's block reports, kept by change for its report sessions (report-session.ts,
// one per name server): each whole block's report and hash, the digest of them all, and a
// journal of the blocks whose report changed, or that came or went. `refresh` runs on every
// beat: one pass over the blocks comparing each one's state with its last report, field by
// field, building and hashing only the reports that changed; a session then reads the journal
// since its last beat instead of every block.
//
// A change the comparison missed would leave a name server with a wrong picture until a
// digest mismatch, so: it compares every field Block.report() fills (UNCHANGED_FIELDS, which a
// test holds to the report's keys), and every `verifyEvery` passes every report is built and
// hashed afresh and the digest summed again; what that corrects is counted and journaled.
import { reportHash, ReportDigest, type Hash64 } from '../src/wire/heartbeat.ts';
import type { BlockReport } from '../src/wire/protocol.ts';
import type { Block } from './block.ts';
import { heldWhole } from './block-store.ts';
import { fingerprintOf, type Fingerprint, type HeldReports } from './report-session.ts';

interface Entry {
  readonly id: number;
  report: BlockReport;
  hash: Hash64;
  fp: Fingerprint;
  /** the pass that last saw the block held */
  seen: number;
}

/** How far a pass looks ahead in its order for the block it meets: past blocks that went, a few in a row. */
const AHEAD = 8;

function ahead(order: readonly Entry[], at: number, id: number): number {
  for (let k = at, end = Math.min(order.length, at + AHEAD); k < end; k++) if (order[k]!.id === id) return k;
  return -1;
}

/** Takes the entries at `positions` (ascending) out of `order`, in one pass from the first. */
function closeUp(order: Entry[], positions: readonly number[]): void {
  let to = positions[0]!;
  let p = 0;
  for (let from = to; from < order.length; from++) {
    if (from === positions[p]) p++;
    else order[to++] = order[from]!;
  }
  order.length = to;
}

/** Every field of a report `unchanged` compares (a report's id is its entry's key). */
export const UNCHANGED_FIELDS = ['id', 'size', 'liveCount', 'liveBytes', 'deletedBytes', 'sealed', 'readonly', 'gen'] as const;

/** Whether a report given whole (a store made of reports) is still `r`. */
function sameReport(x: BlockReport, r: BlockReport): boolean {
  return x.size === r.size && x.liveCount === r.liveCount && x.liveBytes === r.liveBytes && x.deletedBytes === r.deletedBytes && x.gen === r.gen && x.sealed === r.sealed && x.readonly === r.readonly;
}

/** Whether `b`'s report would still be `r`: Block.report() field by field, without building it. */
function unchanged(b: Block, r: BlockReport): boolean {
  const m = b.meta;
  return (
    r.size === m.end &&
    r.liveCount === m.liveCount &&
    r.liveBytes === m.liveBytes &&
    r.deletedBytes === m.deletedBytes &&
    r.gen === m.gen &&
    r.sealed === b.sealed &&
    r.readonly === (b.writeRefusal() !== undefined)
  );
}

export interface ReportLedgerOptions {
  /** journal entries kept at least; a session further behind compares every block once */
  keep?: number;
  /** passes between two full checks (0: never) */
  verifyEvery?: number;
}

/** At 1 s beats, about 10 minutes per name server beaten. */
const VERIFY_EVERY = 600;
const KEEP = 1 << 15;

export class ReportLedger implements HeldReports {
  private readonly entries = new Map<number, Entry>();
  /**
   * Every entry, in the order the last pass met its block. The store's map keeps its order
   * (a new block goes last), so a pass finds its entries here one after the other, and
   * neither looks up the map (a lookup per block was half of a pass) nor walks the entries
   * to find the blocks that went.
   */
  private order: Entry[] = [];
  private sum = new ReportDigest();
  /** ids changed, in order: journal[i] is the change that made version base + i + 1 */
  private journal: number[] = [];
  private base = 0;
  private passes = 0;
  private readonly keep: number;
  private readonly verifyEvery: number;
  /** the highest id among the blocks held, -1 for none */
  maxId = -1;

  constructor(o: ReportLedgerOptions = {}) {
    this.keep = Math.max(1, o.keep ?? KEEP);
    this.verifyEvery = o.verifyEvery ?? VERIFY_EVERY;
  }

  /**
   * Brings the reports up to date with `source`: the store's blocks (whole copies only, as
   * BlockStore.reports({completeOnly: true})), or a list of reports, compared one by one.
   * Returns how many reports or digests a full check found wrong (0 when none, or when this
   * pass was not one).
   */
  refresh(source: ReadonlyMap<number, Block> | readonly BlockReport[]): number {
    const blocks = Array.isArray(source) ? undefined : (source as ReadonlyMap<number, Block>);
    const pass = ++this.passes;
    const order = this.order;
    let at = 0;
    /** positions in `order` passed over: blocks that went (while the pass keeps to the order) */
    const passed: number[] = [];
    /** the new order, from the first block met out of the old one */
    let moved: Entry[] | undefined;
    let held = 0;
    let max = -1;
    for (const x of blocks ? blocks.values() : (source as readonly BlockReport[])) {
      // one of the two: a block, or a report given whole
      const b = blocks ? (x as Block) : undefined;
      const given = blocks ? undefined : (x as BlockReport);
      if (b !== undefined && !heldWhole(b)) continue;
      held++;
      if (x.id > max) max = x.id;
      let e: Entry | undefined;
      const k = moved === undefined ? ahead(order, at, x.id) : -1;
      if (k >= 0) {
        while (at < k) passed.push(at++);
        e = order[at++]!;
      } else {
        e = this.entries.get(x.id);
        // Out of the old order (a block back, or whole again): the order is made anew. A new
        // block met past the old order's end is where the store's map puts new blocks.
        if (moved === undefined && (e !== undefined || at < order.length)) moved = order.slice(0, at).filter((o) => o.seen === pass);
      }
      if (e === undefined) {
        e = this.add(x.id, given ?? b!.report());
        if (moved === undefined) order[at++] = e;
      } else if (given ? !sameReport(given, e.report) : !unchanged(b!, e.report)) this.change(e, given ?? b!.report());
      e.seen = pass;
      moved?.push(e);
    }
    this.maxId = max;
    if (moved !== undefined) {
      if (held !== this.entries.size) for (const e of order) if (e.seen !== pass) this.drop(e);
      this.order = moved;
    } else {
      // every entry passed over, and every one after the last met, is of a block that went
      for (const i of passed) this.drop(order[i]!);
      for (let i = at; i < order.length; i++) this.drop(order[i]!);
      order.length = at;
      if (passed.length > 0) closeUp(order, passed);
    }
    return blocks && this.verifyEvery > 0 && pass % this.verifyEvery === 0 ? this.verify(blocks) : 0;
  }

  /** Builds and hashes every report afresh, and sums the digest again; returns what it corrected. */
  private verify(blocks: ReadonlyMap<number, Block>): number {
    let wrong = 0;
    for (const [id, e] of this.entries) {
      const r = blocks.get(id)!.report();
      const h = reportHash(r);
      if (h.hi === e.hash.hi && h.lo === e.hash.lo) continue;
      wrong++;
      this.change(e, r);
    }
    const sum = new ReportDigest();
    for (const e of this.entries.values()) sum.add(e.hash);
    if (sum.hi !== this.sum.hi || sum.lo !== this.sum.lo || sum.count !== this.sum.count) {
      wrong++;
      this.sum = sum;
    }
    return wrong;
  }

  private add(id: number, report: BlockReport): Entry {
    const hash = reportHash(report);
    const e: Entry = { id, report, hash, fp: fingerprintOf(hash), seen: 0 };
    this.entries.set(id, e);
    this.sum.add(hash);
    this.record(id);
    return e;
  }

  private drop(e: Entry): void {
    this.entries.delete(e.id);
    this.sum.remove(e.hash);
    this.record(e.id);
  }

  private change(e: Entry, report: BlockReport): void {
    const hash = reportHash(report);
    this.sum.remove(e.hash);
    this.sum.add(hash);
    e.report = report;
    e.hash = hash;
    e.fp = fingerprintOf(hash);
    this.record(e.id);
  }

  private record(id: number): void {
    this.journal.push(id);
    if (this.journal.length >= 2 * this.keep) {
      this.journal = this.journal.slice(this.keep);
      this.base += this.keep;
    }
  }

  get count(): number {
    return this.sum.count;
  }

  get digest(): string {
    return this.sum.toString();
  }

  get version(): number {
    return this.base + this.journal.length;
  }

  changedSince(version: number): readonly number[] | undefined {
    if (version < this.base || version > this.version) return undefined;
    return this.journal.slice(version - this.base);
  }

  report(id: number): BlockReport | undefined {
    return this.entries.get(id)?.report;
  }

  fingerprint(id: number): Fingerprint | undefined {
    return this.entries.get(id)?.fp;
  }

  list(): BlockReport[] {
    const reports: BlockReport[] = [];
    for (const e of this.entries.values()) reports.push(e.report);
    return reports.sort((a, b) => a.id - b.id);
  }

  fingerprints(): Map<number, Fingerprint> {
    const fps = new Map<number, Fingerprint>();
    for (const [id, e] of this.entries) fps.set(id, e.fp);
    return fps;
  }
}
