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
// Cost on the data server: one pass over its reports per beat (a hash per block) — the work
// that matters, the name server's, is proportional to change.
import { randomBytes } from 'node:crypto';
import { REPORT_PAGE_BLOCKS, reportHash, ReportDigest } from '../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../src/wire/protocol.ts';

/** A report's hash folded to one number: what a block looked like when last sent. */
type Fingerprint = number;
const REMOVED = -1;
/** The session of a message asking for the turn to send a full report (no session id is '-'). */
const ASK = '-';
/**
 * Deltas without an answer after which the session starts over with a full report. Each
 * delta repeats every block of the unanswered ones, so their memory grows with the square of
 * the beats a name server stays away; a minute of beats is the bound.
 */
export const MAX_UNANSWERED_DELTAS = 60;

function fingerprint(hi: number, lo: number): Fingerprint {
  return hi * 0x20_0000 + (lo & 0x1f_ffff);
}

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
  next(current: readonly BlockReport[]): ReportMessage[] {
    const digest = new ReportDigest();
    const now = new Map<number, Fingerprint>();
    const byId = new Map<number, BlockReport>();
    for (const r of current) {
      const h = reportHash(r);
      digest.add(h);
      now.set(r.id, fingerprint(h.hi, h.lo));
      byId.set(r.id, r);
    }
    const count = digest.count;
    const digestText = digest.toString();
    if (this.unacked.size >= MAX_UNANSWERED_DELTAS) this.restart();
    if (this.needFull && this.granted) return this.fullReport(current, now, count, digestText);
    // Not sent unasked: a small message asks for the turn (a session no name server knows).
    if (this.needFull) return [{ session: ASK, seq: 1, kind: 'delta', blocks: [], count, digest: digestText }];

    const changed = new Set<number>();
    for (const [id, fp] of now) if (this.acked.get(id) !== fp) changed.add(id);
    for (const id of this.acked.keys()) if (!now.has(id)) changed.add(id);
    for (const m of this.unacked.values()) for (const id of m.keys()) changed.add(id);
    const blocks: BlockReport[] = [];
    const removed: number[] = [];
    const sent = new Map<number, Fingerprint>();
    for (const id of changed) {
      const r = byId.get(id);
      if (r) {
        blocks.push(r);
        sent.set(id, now.get(id)!);
      } else {
        removed.push(id);
        sent.set(id, REMOVED);
      }
    }
    const seq = ++this.seq;
    this.unacked.set(seq, sent);
    return [{ session: this.session, seq, kind: 'delta', blocks, ...(removed.length > 0 ? { removed } : {}), count, digest: digestText }];
  }

  private fullReport(current: readonly BlockReport[], now: Map<number, Fingerprint>, count: number, digest: string): ReportMessage[] {
    this.session = this.newSessionId();
    this.seq = 0;
    this.unacked.clear();
    const pages: ReportMessage[] = [];
    for (let i = 0; i === 0 || i < current.length; i += this.pageBlocks) {
      const blocks = current.slice(i, i + this.pageBlocks);
      pages.push({ session: this.session, seq: ++this.seq, kind: 'full', blocks, last: i + this.pageBlocks >= current.length, count, digest });
    }
    this.full = { blocks: now, lastSeq: this.seq };
    return pages;
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
