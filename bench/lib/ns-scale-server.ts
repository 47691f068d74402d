// What one simulated data server of the name-server scale bench holds: its layout blocks
// (bench/lib/ns-scale-layout.ts, kept as a typed array of ids, their reports derived from the
// id) plus whatever changed since: blocks created or pulled onto it, copies removed, reports
// changed by churn or made read-only. Memory is 4 bytes per layout copy and an object per
// change, so 16M copies fit in one process. Its digest is kept per change (XOR in, XOR out),
// and its report sessions (ns-scale-session.ts), one per name server it beats as a data
// server keeps one per --nameserver URL, are told of every change.
import { ReportDigest, reportHash } from '../../src/wire/heartbeat.ts';
import type { BlockReport } from '../../src/wire/protocol.ts';
import type { ReportSessionOptions } from '../../dataserver/report-session.ts';
import { baseReport, inLayout, simId, simRack, SIM_BLOCK_SIZE, type Layout } from './ns-scale-layout.ts';
import { SimReportSession, type ReportSource } from './ns-scale-session.ts';

export class SimServer implements ReportSource {
  readonly id: string;
  readonly rack: string;
  readonly digest = new ReportDigest();
  /** one report session per name server beaten (in the order of their URLs) */
  readonly sessions: SimReportSession[];
  private layout: Layout | undefined;
  private base: Uint32Array = new Uint32Array(0);
  /** held blocks whose report is not the layout's: changed layout copies, and every other block held */
  private readonly over = new Map<number, BlockReport>();
  /** layout blocks no longer held */
  private readonly gone = new Set<number>();

  constructor(
    readonly index: number,
    /** its base URL, as the name server calls it */
    readonly url: string,
    sessionOptions: ReportSessionOptions = {},
    nameservers = 1,
  ) {
    this.id = simId(index);
    this.rack = simRack(index);
    this.sessions = Array.from({ length: nameservers }, () => new SimReportSession(this, sessionOptions));
  }

  /** the session with the first name server */
  get session(): SimReportSession {
    return this.sessions[0]!;
  }

  /** From now on it holds its layout blocks (`ids`, this server's share): a full report follows. */
  load(layout: Layout, ids: Uint32Array): void {
    this.layout = layout;
    this.base = ids;
    this.over.clear();
    this.gone.clear();
    this.digest.clear();
    for (const id of ids) this.digest.add(reportHash(baseReport(id)));
    for (const s of this.sessions) s.restart();
  }

  private isBase(id: number): boolean {
    return this.layout !== undefined && inLayout(id, this.index, this.layout);
  }

  defaultReport(id: number): BlockReport | undefined {
    return this.isBase(id) ? baseReport(id) : undefined;
  }

  report(id: number): BlockReport | undefined {
    if (this.isBase(id)) return this.gone.has(id) ? undefined : (this.over.get(id) ?? baseReport(id));
    return this.over.get(id);
  }

  /** The block's new report (undefined: the copy is gone). */
  set(id: number, r: BlockReport | undefined): void {
    const old = this.report(id);
    if (old) this.digest.remove(reportHash(old));
    if (r) this.digest.add(reportHash(r));
    if (!r) {
      this.over.delete(id);
      if (this.isBase(id)) this.gone.add(id);
    } else {
      this.gone.delete(id);
      this.over.set(id, r);
    }
    for (const s of this.sessions) s.touch(id);
  }

  *differences(): Iterable<number> {
    yield* this.gone;
    yield* this.over.keys();
  }

  current(): BlockReport[] {
    const out: BlockReport[] = [];
    for (const id of this.base) if (!this.gone.has(id)) out.push(this.over.get(id) ?? baseReport(id));
    for (const [id, r] of this.over) if (!this.isBase(id)) out.push(r);
    return out;
  }

  get count(): number {
    return this.digest.count;
  }

  /** Bytes its blocks take, as a heartbeat says (layout blocks counted as nearly full). */
  usedBytes(): number {
    return Math.round(this.count * SIM_BLOCK_SIZE * 0.9);
  }

  /** A held layout block picked at random (undefined when it holds none). */
  randomLayoutBlock(rand: () => number): number | undefined {
    for (let tries = 0; tries < 8 && this.base.length > 0; tries++) {
      const id = this.base[Math.floor(rand() * this.base.length)]!;
      if (!this.gone.has(id)) return id;
    }
    return undefined;
  }

  /** Held blocks that take writes (created here, not sealed). */
  writableBlocks(): number[] {
    const out: number[] = [];
    for (const [id, r] of this.over) if (!r.sealed && !r.readonly && !this.isBase(id)) out.push(id);
    return out;
  }
}
