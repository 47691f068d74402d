// A data server's block-report session with one name server (one per name server it beats).
// A session starts with a full report, sent in pages of REPORT_PAGE_BLOCKS; every later beat
// sends a delta: each block whose report differs from what the name server acknowledged,
// each acknowledged block no longer held, and again every block named by a message not yet
// acknowledged. So a lost or duplicated delta changes nothing (the next one repeats it, and
// applying a report twice is applying it once), and the name server drops a delta older than
// one it applied (reordering). Every message carries the count and digest of the whole set;
// the name server asks for a full report when its own picture disagrees, when it does not
// know the session (it restarted, or was just elected), or when a full report's pages
// arrive out of order. A full report is never sent unasked: a small message asks for the
// turn, and the name server gives it or says to wait (it takes a few servers' full reports
// at a time). docs/NAMESERVER.md, "Block reports".
//
// Cost on the data server: the session reads a HeldReports. The data server's is its report
// ledger (report-ledger.ts), kept by change with a journal of the blocks changed, so a delta
// looks only at the blocks changed since the last message and at those not yet acknowledged
// (0.1 ms a beat at 200,000 blocks); what is left per beat is the ledger's pass comparing each
// block's state with its last report (7-10 ms at 200,000 blocks, against 314-318 ms for
// building and hashing every report on every beat: bench/dataserver-report-beat.ts). A full
// report reads every block. A plain list of reports (tests, simulations) is compared whole, a
// hash per block, on every call.
import { randomBytes } from 'node:crypto';
import { REPORT_PAGE_BLOCKS, reportHash, ReportDigest, type Hash64 } from '../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../src/wire/protocol.ts';

/** A report's hash folded to one number: what a block looked like when last sent. */
export type Fingerprint = number;
const REMOVED = -1;

export function fingerprintOf(h: Hash64): Fingerprint {
  return h.hi * 0x20_0000 + (h.lo & 0x1f_ffff);
}

/** The blocks a data server holds, as a report session reads them. */
export interface HeldReports {
  /** how many blocks, and the digest of their reports (16 hex) */
  readonly count: number;
  readonly digest: string;
  /** a block's report and its fingerprint; undefined when the block is not held */
  report(id: number): BlockReport | undefined;
  fingerprint(id: number): Fingerprint | undefined;
  /** every report, in id order (a full report's pages) */
  list(): readonly BlockReport[];
  /** every block's fingerprint, in a map the caller may keep and change */
  fingerprints(): Map<number, Fingerprint>;
  /** the position of the journal of changes now */
  readonly version: number;
  /** ids whose report changed, or that came or went, after `version`; undefined when no longer known (every id counts then) */
  changedSince(version: number): readonly number[] | undefined;
}

/** A plain list of reports as HeldReports: no journal, so every beat compares every block. */
class ListedReports implements HeldReports {
  readonly count: number;
  readonly digest: string;
  readonly version = 0;
  private readonly now = new Map<number, Fingerprint>();
  private readonly byId = new Map<number, BlockReport>();
  constructor(private readonly reports: readonly BlockReport[]) {
    const d = new ReportDigest();
    for (const r of reports) {
      const h = reportHash(r);
      d.add(h);
      this.now.set(r.id, fingerprintOf(h));
      this.byId.set(r.id, r);
    }
    this.count = d.count;
    this.digest = d.toString();
  }
  report(id: number): BlockReport | undefined {
    return this.byId.get(id);
  }
  fingerprint(id: number): Fingerprint | undefined {
    return this.now.get(id);
  }
  list(): readonly BlockReport[] {
    return this.reports;
  }
  /** its own map: a list is made for one call of next() */
  fingerprints(): Map<number, Fingerprint> {
    return this.now;
  }
  changedSince(): undefined {
    return undefined;
  }
}

/** The session of a message asking for the turn to send a full report (no session id is '-'). */
const ASK = '-';
/**
 * Deltas without an answer after which the session starts over with a full report. Each
 * delta repeats every block of the unanswered ones, so their memory grows with the square of
 * the beats a name server stays away; a minute of beats is the bound.
 */
export const MAX_UNANSWERED_DELTAS = 60;

const isList = (c: readonly BlockReport[] | HeldReports): c is readonly BlockReport[] => Array.isArray(c);

export interface ReportSessionOptions {
  pageBlocks?: number;
  newSessionId?: () => string;
}

export class ReportSession {
  private session = '';
  private seq = 0;
  /** what the name server has acknowledged: block id -> fingerprint */
  private acked = new Map<number, Fingerprint>();
  /** sent, not yet acknowledged: seq -> (block id -> fingerprint, or REMOVED) */
  private readonly unacked = new Map<number, Map<number, Fingerprint>>();
  /** the full report being sent: its blocks, and the seq of its last page */
  private full: { blocks: Map<number, Fingerprint>; lastSeq: number } | undefined;
  /** where the source's journal stood at the last delta or full report */
  private mark: { source: HeldReports; version: number } | undefined;
  private needFull = true;
  /** the name server gave this server its turn to send a full report (report-intake.ts, turns) */
  private granted = false;
  private readonly pageBlocks: number;
  private readonly newSessionId: () => string;

  constructor(o: ReportSessionOptions = {}) {
    this.pageBlocks = Math.max(1, o.pageBlocks ?? REPORT_PAGE_BLOCKS);
    this.newSessionId = o.newSessionId ?? (() => randomBytes(8).toString('hex'));
  }

  /** True until a full report has been acknowledged whole (and again when one is asked for). */
  get wantsFull(): boolean {
    return this.needFull;
  }

  /** True when the next messages are a full report's pages (the name server gave the turn). */
  get sendsFull(): boolean {
    return this.needFull && this.granted;
  }

  /** Starts over with a full report, asked for first (e.g. the name server answered without a report ack). */
  restart(): void {
    this.needFull = true;
    this.granted = false;
    this.full = undefined;
    this.unacked.clear();
  }

  /** The messages of this beat, in order: a full report's pages, or one delta (maybe empty). */
  next(current: readonly BlockReport[] | HeldReports): ReportMessage[] {
    const held = isList(current) ? new ListedReports(current) : current;
    const { count, digest } = held;
    if (this.unacked.size >= MAX_UNANSWERED_DELTAS) this.restart();
    if (this.needFull && this.granted) return this.fullReport(held);
    // Not sent unasked: a small message asks for the turn (a session no name server knows).
    if (this.needFull) return [{ session: ASK, seq: 1, kind: 'delta', blocks: [], count, digest }];

    const changed = this.changed(held);
    const blocks: BlockReport[] = [];
    const removed: number[] = [];
    const sent = new Map<number, Fingerprint>();
    for (const id of changed) {
      const r = held.report(id);
      if (r) {
        blocks.push(r);
        sent.set(id, held.fingerprint(id)!);
      } else {
        removed.push(id);
        sent.set(id, REMOVED);
      }
    }
    this.remember(held);
    const seq = ++this.seq;
    this.unacked.set(seq, sent);
    return [{ session: this.session, seq, kind: 'delta', blocks, ...(removed.length > 0 ? { removed } : {}), count, digest }];
  }

  /** The blocks a delta names: each whose report differs from what was acknowledged, and each of a message not yet acknowledged. */
  private changed(held: HeldReports): Set<number> {
    const changed = new Set<number>();
    const since = this.mark?.source === held ? held.changedSince(this.mark.version) : undefined;
    if (since === undefined) {
      const now = held.fingerprints();
      for (const [id, fp] of now) if (this.acked.get(id) !== fp) changed.add(id);
      for (const id of this.acked.keys()) if (!now.has(id)) changed.add(id);
    } else {
      // Only these can differ from what was acknowledged: the last message named every block
      // that did then, and what it named is either acknowledged as sent or named again below.
      for (const id of since) if (held.fingerprint(id) !== this.acked.get(id)) changed.add(id);
    }
    for (const m of this.unacked.values()) for (const id of m.keys()) changed.add(id);
    return changed;
  }

  private fullReport(held: HeldReports): ReportMessage[] {
    const { count, digest } = held;
    const current = held.list();
    this.session = this.newSessionId();
    this.seq = 0;
    this.unacked.clear();
    const pages: ReportMessage[] = [];
    for (let i = 0; i === 0 || i < current.length; i += this.pageBlocks) {
      const blocks = current.slice(i, i + this.pageBlocks);
      pages.push({ session: this.session, seq: ++this.seq, kind: 'full', blocks, last: i + this.pageBlocks >= current.length, count, digest });
    }
    this.full = { blocks: held.fingerprints(), lastSeq: this.seq };
    // Once acknowledged, the full report is the picture: what differs from it changes after now.
    this.remember(held);
    return pages;
  }

  /** Where the next delta starts looking (a list, without a journal, is compared whole anyway). */
  private remember(held: HeldReports): void {
    this.mark = held instanceof ListedReports ? undefined : { source: held, version: held.version };
  }

  /**
   * What the name server answered to `m` (undefined: no answer, or none about the report).
   * False when the rest of this beat's messages should not be sent (a full report to restart).
   */
  answered(m: ReportMessage, ack: ReportAck | undefined): boolean {
    if (m.session === ASK) {
      // The answer to asking: the turn, or wait and ask again next beat.
      if (ack?.full) this.granted = ack.wait !== true;
      return false;
    }
    if (m.session !== this.session) return true; // an answer to a session given up since
    if (!ack || ack.session !== this.session || ack.full) {
      this.restart();
      // Asked for a full report in answer to a delta, with the turn: it goes at once.
      if (ack?.full && ack.wait !== true && m.kind === 'delta') this.granted = true;
      return false;
    }
    if (m.kind === 'full') {
      if (ack.ack < m.seq) {
        this.restart();
        return false;
      }
      if (m.last && this.full && ack.ack >= this.full.lastSeq) {
        this.acked = this.full.blocks;
        this.full = undefined;
        this.needFull = false;
        this.granted = false;
      }
      return true;
    }
    for (const [seq, sent] of [...this.unacked]) {
      if (seq > ack.ack) break;
      for (const [id, fp] of sent) {
        if (fp === REMOVED) this.acked.delete(id);
        else this.acked.set(id, fp);
      }
      this.unacked.delete(seq);
    }
    return true;
  }

  /** `m` got no answer (the name server is down, or the reply was lost): a full report starts over. */
  unanswered(m: ReportMessage): void {
    if (m.kind === 'full' && m.session === this.session) this.restart();
  }
}
