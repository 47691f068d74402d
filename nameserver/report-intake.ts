// Applies data servers' block-report messages (src/wire/heartbeat.ts, the sender is
// dataserver/report-session.ts) to the block map, in work proportional to what a message
// carries. Per server it keeps the session, the highest seq applied, and a digest of every
// block the server reported (copies kept, and reports refused: the digest is of what the
// server said). Rules:
//   - a full report's first page (seq 1) starts a session; pages must follow one another
//     (seq + 1), else a full report is asked for again; after the last page, copies the
//     report did not name are forgotten;
//   - a delta of an unknown session, or while a full report is incomplete, is not applied:
//     a full report is asked for; a delta not newer than the last applied is stale (it was
//     reordered or repeated) and is dropped; any other is applied, blocks set or removed;
//   - after a last page or a delta, a digest or count that differs from the server's asks
//     for a full report (counted in ugcfs_report_full_requests_total{reason="digest"}).
// A new leader forgets every session, so each server sends a full report first (resetAll).
//
// Full reports take turns: at most `fullAtOnce` servers send one at a time; a server asked
// for one while the turns are taken is told to wait (`wait: true`) and asks again at its next
// beat, first come first served. A name server that restarts among hundreds of servers so
// takes in their reports at its own pace, each page answered while its sender still waits,
// instead of parsing pages whose senders timed out and will send them again.
import { reportHash, ReportDigest, type Hash64 } from '../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../src/wire/protocol.ts';
import type { BlockMap } from './block-map.ts';
import { nextRound, PagePacer, type Pause } from './page-pacer.ts';
import type { Registry } from './registry.ts';

interface ServerReports {
  session: string;
  /** highest seq applied in the session */
  seq: number;
  /** the full report being received: its stamp (copy-table.ts), and the other ids it named */
  full?: { stamp: number; others: Set<number> };
  /** a full report from this server has been applied whole since this name server started (or led) */
  whole: boolean;
  digest: ReportDigest;
  /** reported blocks not kept as copies (never allocated, or abandoned elsewhere): their hashes */
  refused: Map<number, Hash64>;
  /** copies dropped by the name server itself, whose reports still count in the digest */
  detached: Map<number, Hash64>;
}

/** Delta blocks applied between two yields to the event loop (~5 ms of work); pages are paced by time (page-pacer.ts). */
const YIELD_EVERY = 2048;
/** Page blocks applied between two looks at the clock. */
const CLOCK_EVERY = 256;

export type FullReason = 'unknown-session' | 'page-gap' | 'digest';

export interface IntakeResult {
  ack: ReportAck;
  /** copies set by this message (to evaluate: extra copies, seals, read-only orders) */
  changed: BlockReport[];
}

export interface IntakeEvents {
  /** a full report was asked for */
  fullRequested?: (reason: FullReason) => void;
  /** a message was applied: how many block entries it carried */
  applied?: (kind: ReportMessage['kind'], entries: number) => void;
}

export interface IntakeOptions {
  /** servers sending a full report at the same time; the others wait their turn */
  fullAtOnce?: number;
  /** a turn given, and no page for this long: it goes to the next server */
  turnTimeoutMs?: number;
}

/** Decides whether a reported block is kept as a copy (true) or refused (false); synchronous when it can be (it runs per block). */
export type Admit = (report: BlockReport) => Promise<boolean> | boolean;

export class ReportIntake {
  private readonly servers = new Map<string, ServerReports>();
  /** servers whose turn to send a full report it is: id -> when it last made progress */
  private readonly turns = new Map<string, number>();
  /** servers waiting for a turn, in the order they first asked: id -> when they last asked */
  private readonly waiting = new Map<string, number>();
  private stamps = 0;
  /** full-report pages, applied one at a time in short slices */
  private readonly pages = new PagePacer();
  private readonly fullAtOnce: number;
  private readonly turnTimeoutMs: number;

  constructor(
    private readonly blocks: BlockMap,
    private readonly registry: Registry,
    private readonly events: IntakeEvents = {},
    o: IntakeOptions = {},
  ) {
    this.fullAtOnce = Math.max(1, o.fullAtOnce ?? 16);
    this.turnTimeoutMs = o.turnTimeoutMs ?? 15_000;
    blocks.onCopyDropped((dsId, last) => this.servers.get(dsId)?.detached.set(last.id, reportHash(last)));
  }

  /** Every server must send a full report before its deltas are taken again (a new leader). */
  resetAll(): void {
    this.servers.clear();
    this.turns.clear();
    this.waiting.clear();
  }

  /** True once a full report from `dsId` has been applied whole (its copies are all known). */
  reportedWhole(dsId: string): boolean {
    return this.servers.get(dsId)?.whole === true;
  }

  async apply(dsId: string, m: ReportMessage, admit: Admit, now = Date.now()): Promise<IntakeResult> {
    let st = this.servers.get(dsId);
    const want = (reason: FullReason): IntakeResult => {
      if (st) st.full = undefined;
      const ack: ReportAck = { session: m.session, ack: st?.session === m.session ? st.seq : 0, full: true };
      if (this.takeTurn(dsId, now)) this.events.fullRequested?.(reason);
      else ack.wait = true;
      return { ack, changed: [] };
    };
    if (m.kind === 'full') {
      if (m.seq === 1) {
        // A full report sent out of turn (a data server that started with one) is turned away
        // while others have the turns: it asks again and waits like them.
        if (!this.takeTurn(dsId, now)) return want('unknown-session');
        st = { session: m.session, seq: 0, full: { stamp: (this.stamps = (this.stamps % 0xffff_fffe) + 1), others: new Set() }, whole: st?.whole ?? false, digest: new ReportDigest(), refused: st?.refused ?? new Map(), detached: st?.detached ?? new Map() };
        // The digest restarts from what is recorded now (copies kept from before this
        // session included), so each change below moves it from a true value.
        for (const r of this.registry.copiesOf(dsId)) st.digest.add(reportHash(r));
        for (const h of st.refused.values()) st.digest.add(h);
        for (const h of st.detached.values()) st.digest.add(h);
        this.servers.set(dsId, st);
      } else if (!st || st.session !== m.session || !st.full || m.seq !== st.seq + 1) return want('page-gap');
      this.turns.set(dsId, now);
    } else {
      if (!st || st.session !== m.session || st.full) return want('unknown-session');
      if (m.seq <= st.seq) return { ack: { session: st.session, ack: st.seq }, changed: [] };
    }
    const changed: BlockReport[] = [];
    const stamp = st.full?.stamp;
    const server = st;
    const full = st.full;
    // A page waits its turn (page-pacer.ts) and yields while applied: meanwhile its sender may
    // have given up and started again, or a new leader reset every session. Such a page
    // stops where it is and gets asked for a full report.
    const stale = () => this.servers.get(dsId) !== server || server.full !== full;
    const applyBlocks = async (pause: Pause, every: number): Promise<boolean> => {
      for (let i = 0; i < m.blocks.length; i++) {
        const r = m.blocks[i]!;
        let ok = admit(r);
        if (typeof ok !== 'boolean') ok = await ok;
        if (this.set(dsId, server, r, ok, stamp)) changed.push(r);
        if (i % every === every - 1) {
          const p = pause();
          if (p) {
            await p;
            if (stale()) return false;
          }
        }
      }
      return !stale();
    };
    const whole = m.kind === 'full' ? await this.pages.run((pause) => (stale() ? Promise.resolve(false) : applyBlocks(pause, CLOCK_EVERY))) : await applyBlocks(nextRound, YIELD_EVERY);
    if (!whole) return want('page-gap');
    for (const id of m.removed ?? []) this.remove(dsId, st, id);
    if (m.kind === 'full' && m.last && full) {
      st.full = undefined;
      for (const id of this.registry.copyIdsNotStamped(dsId, full.stamp)) this.remove(dsId, st, id);
      for (const id of [...st.refused.keys()]) if (!full.others.has(id)) this.remove(dsId, st, id);
      for (const id of [...st.detached.keys()]) this.remove(dsId, st, id);
      st.whole = true;
      this.turns.delete(dsId);
    }
    st.seq = m.seq;
    this.events.applied?.(m.kind, m.blocks.length + (m.removed?.length ?? 0));
    if (m.kind === 'delta' || m.last) {
      if (st.digest.count !== m.count || st.digest.toString() !== m.digest) return want('digest');
    }
    return { ack: { session: st.session, ack: st.seq }, changed };
  }

  /**
   * Whether `dsId` may send a full report now: it has the turn, or one is free and no server
   * asked before it. Turns with no progress for turnTimeoutMs, and askers silent as long,
   * are dropped.
   */
  private takeTurn(dsId: string, now: number): boolean {
    for (const [id, at] of this.turns) if (now - at > this.turnTimeoutMs) this.turns.delete(id);
    if (this.turns.has(dsId)) {
      this.turns.set(dsId, now);
      return true;
    }
    for (const [id, at] of this.waiting) if (now - at > this.turnTimeoutMs) this.waiting.delete(id);
    if (!this.waiting.has(dsId)) this.waiting.set(dsId, now);
    else this.waiting.set(dsId, now); // keeps its place: Map order is first insertion
    let free = this.fullAtOnce - this.turns.size;
    for (const id of this.waiting.keys()) {
      if (free <= 0) return false;
      if (id === dsId) {
        this.waiting.delete(dsId);
        this.turns.set(dsId, now);
        return true;
      }
      free--;
    }
    return false;
  }

  /** Forgets a server's session and digest (it was refused, or forgotten). */
  drop(dsId: string): void {
    this.servers.delete(dsId);
    this.turns.delete(dsId);
    this.waiting.delete(dsId);
  }

  private forgetOld(dsId: string, st: ServerReports, id: number): void {
    const refused = st.refused.get(id);
    if (refused) {
      st.digest.remove(refused);
      st.refused.delete(id);
      return;
    }
    const detached = st.detached.get(id);
    if (detached) {
      st.digest.remove(detached);
      st.detached.delete(id);
    }
    const old = this.blocks.removeCopy(dsId, id, true);
    if (old) st.digest.remove(reportHash(old));
  }

  /** True when kept as a copy. */
  private set(dsId: string, st: ServerReports, r: BlockReport, admitted: boolean, stamp: number | undefined): boolean {
    const h = reportHash(r);
    const refused = st.refused.get(r.id);
    const detached = st.detached.get(r.id);
    if (refused) {
      st.digest.remove(refused);
      st.refused.delete(r.id);
    }
    if (detached) {
      st.digest.remove(detached);
      st.detached.delete(r.id);
    }
    if (!admitted) {
      const old = this.blocks.removeCopy(dsId, r.id, true);
      if (old) st.digest.remove(reportHash(old));
      st.refused.set(r.id, h);
      st.digest.add(h);
      st.full?.others.add(r.id);
      return false;
    }
    const old = this.blocks.setCopy(dsId, r, stamp);
    if (old) st.digest.remove(reportHash(old));
    st.digest.add(h);
    return true;
  }

  private remove(dsId: string, st: ServerReports, id: number): void {
    this.forgetOld(dsId, st, id);
  }
}
