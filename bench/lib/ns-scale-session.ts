// One simulated data server's block-report session (bench/lib/dataserver-sim.ts), at the
// cost of what changed. The real session (dataserver/report-session.ts, ReportSession) makes
// every full report here: its pages, session id and digest are what is sent. Its deltas,
// though, come from a pass over the whole block list on every beat (~1 µs per block here):
// for 400 simulated servers of 40,000 copies each, one process would need 16 s of CPU per
// second. So once a full report is acknowledged, this session carries on with the same
// session id and sequence and builds each delta from the blocks touched since, against a
// running digest: the messages ReportSession would send for the same history, which
// test/bench/ns-scale-session.test.ts checks message by message. A full report is asked for
// first, as ReportSession asks (a small message with the running digest), and only made once
// the name server gives the turn.
import { ReportSession, type ReportSessionOptions } from '../../dataserver/report-session.ts';
import { reportHash, type ReportDigest } from '../../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../../src/wire/protocol.ts';

/** A report's hash folded to one number (as ReportSession folds it). */
type Fingerprint = number;
const REMOVED = -1;
/** The session of a message asking for the turn to send a full report (as ReportSession's). */
const ASK = '-';

export function fingerprintOf(r: BlockReport | undefined): Fingerprint {
  if (!r) return REMOVED;
  const h = reportHash(r);
  return h.hi * 0x20_0000 + (h.lo & 0x1f_ffff);
}

/** What a simulated server holds, as the session reads it. */
export interface ReportSource {
  /** every block held now, for a full report */
  current(): BlockReport[];
  /** a block's report, undefined when it is not held */
  report(id: number): BlockReport | undefined;
  /**
   * The "default" picture a full report is compared with cheaply: what the server holds when
   * nothing changed (its layout). `differences` lists the blocks whose state is not that.
   */
  defaultReport(id: number): BlockReport | undefined;
  differences(): Iterable<number>;
  /** the running digest (and count) of every block held */
  readonly digest: ReportDigest;
}

export class SimReportSession {
  private full: ReportSession | undefined;
  private session = '';
  private seq = 0;
  private needFull = true;
  /** the name server gave the turn to send a full report */
  private granted = false;
  /** the acknowledged picture where it differs from the source's default one */
  private acked = new Map<number, Fingerprint>();
  /** the picture a full report being sent will leave acknowledged (same encoding) */
  private snapshot = new Map<number, Fingerprint>();
  /** blocks changed since the last full report's snapshot (pruned once acknowledged) */
  private readonly touched = new Set<number>();
  private readonly unacked = new Map<number, Map<number, Fingerprint>>();

  constructor(
    private readonly src: ReportSource,
    private readonly o: ReportSessionOptions = {},
  ) {}

  get wantsFull(): boolean {
    return this.needFull;
  }

  /** True when the next messages are a full report's pages (the name server gave the turn). */
  get sendsFull(): boolean {
    return this.needFull && this.granted;
  }

  /** A block's report changed, or it came or went. */
  touch(id: number): void {
    this.touched.add(id);
  }

  restart(): void {
    this.needFull = true;
    this.granted = false;
    this.full = undefined;
    this.session = '';
    this.unacked.clear();
  }

  /** Whether `m` is still to be sent (a restart drops the rest of a beat's messages). */
  current(m: ReportMessage): boolean {
    return m.session === ASK ? this.needFull && !this.granted : m.session === this.session;
  }

  next(): ReportMessage[] {
    if (this.needFull && this.granted) return this.fullReport();
    const d = this.src.digest;
    if (this.needFull) return [{ session: ASK, seq: 1, kind: 'delta', blocks: [], count: d.count, digest: d.toString() }];
    const pending = new Set<number>();
    for (const m of this.unacked.values()) for (const id of m.keys()) pending.add(id);
    const sent = new Map<number, Fingerprint>();
    for (const id of this.touched) {
      const fp = fingerprintOf(this.src.report(id));
      if (fp !== this.ackedFp(id)) sent.set(id, fp);
      else if (!pending.has(id)) this.touched.delete(id);
    }
    for (const id of pending) if (!sent.has(id)) sent.set(id, fingerprintOf(this.src.report(id)));
    const blocks: BlockReport[] = [];
    const removed: number[] = [];
    for (const [id, fp] of sent) {
      if (fp === REMOVED) removed.push(id);
      else blocks.push(this.src.report(id)!);
    }
    const seq = ++this.seq;
    this.unacked.set(seq, sent);
    return [{ session: this.session, seq, kind: 'delta', blocks, ...(removed.length > 0 ? { removed } : {}), count: d.count, digest: d.toString() }];
  }

  private fullReport(): ReportMessage[] {
    this.full = new ReportSession(this.o);
    // The real session's own turn, given without a pass over the blocks: it asks (about an
    // empty list), is answered with the turn, and its next messages are the pages.
    const ask = this.full.next([]);
    this.full.answered(ask[0]!, { session: ask[0]!.session, ack: 0, full: true });
    if (!this.full.sendsFull) throw new Error('simulated server: the real report session did not take the turn given');
    const pages = this.full.next(this.src.current());
    const d = this.src.digest;
    // The running digest must be the real session's over the whole list: a bug here would
    // make every delta look like drift to the name server.
    if (pages[0]!.digest !== d.toString() || pages[0]!.count !== d.count) {
      throw new Error(`simulated server: running digest ${d.toString()}/${d.count} differs from the full report's ${pages[0]!.digest}/${pages[0]!.count}`);
    }
    this.session = pages[0]!.session;
    this.seq = pages[pages.length - 1]!.seq;
    this.snapshot = new Map();
    for (const id of this.src.differences()) this.snapshot.set(id, fingerprintOf(this.src.report(id)));
    this.touched.clear();
    this.unacked.clear();
    return pages;
  }

  private ackedFp(id: number): Fingerprint {
    const fp = this.acked.get(id);
    return fp !== undefined ? fp : fingerprintOf(this.src.defaultReport(id));
  }

  /** As ReportSession.answered; also false for a message of a session given up since. */
  answered(m: ReportMessage, ack: ReportAck | undefined): boolean {
    if (m.session === ASK) {
      // The answer to asking: the turn, or wait and ask again next beat.
      if (ack?.full) this.granted = ack.wait !== true;
      return false;
    }
    if (m.session !== this.session) return false;
    if (m.kind === 'full') {
      if (!this.full || !this.full.answered(m, ack)) {
        this.restart();
        return false;
      }
      if (m.last && !this.full.wantsFull) {
        this.acked = this.snapshot;
        this.snapshot = new Map();
        this.full = undefined;
        this.needFull = false;
        this.granted = false;
      }
      return true;
    }
    if (!ack || ack.session !== this.session || ack.full) {
      this.restart();
      // Asked for a full report in answer to a delta, with the turn: it goes at once.
      if (ack?.full && ack.wait !== true) this.granted = true;
      return false;
    }
    for (const [seq, sent] of [...this.unacked]) {
      if (seq > ack.ack) break;
      for (const [id, fp] of sent) {
        if (fp === fingerprintOf(this.src.defaultReport(id))) this.acked.delete(id);
        else this.acked.set(id, fp);
      }
      this.unacked.delete(seq);
    }
    return true;
  }

  /** No answer to `m`: a full report starts over; a delta is repeated by the next one. */
  unanswered(m: ReportMessage): void {
    if (m.kind === 'full' && m.session === this.session) this.restart();
  }
}
