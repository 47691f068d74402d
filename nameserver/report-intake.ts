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
import { reportHash, ReportDigest, type Hash64 } from '../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../src/wire/protocol.ts';
import type { BlockMap } from './block-map.ts';

interface ServerReports {
  session: string;
  /** highest seq applied in the session */
  seq: number;
  /** ids named so far by the full report being received */
  fullSeen?: Set<number>;
  digest: ReportDigest;
  /** reported blocks not kept as copies (never allocated, or abandoned elsewhere): their hashes */
  refused: Map<number, Hash64>;
  /** copies dropped by the name server itself, whose reports still count in the digest */
  detached: Map<number, Hash64>;
}

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

/** Decides whether a reported block is kept as a copy (true) or refused (false). */
export type Admit = (report: BlockReport) => Promise<boolean> | boolean;

export class ReportIntake {
  private readonly servers = new Map<string, ServerReports>();

  constructor(
    private readonly blocks: BlockMap,
    private readonly events: IntakeEvents = {},
  ) {
    blocks.onCopyDropped((dsId, last) => this.servers.get(dsId)?.detached.set(last.id, reportHash(last)));
  }

  /** Every server must send a full report before its deltas are taken again (a new leader). */
  resetAll(): void {
    this.servers.clear();
  }

  async apply(dsId: string, m: ReportMessage, admit: Admit): Promise<IntakeResult> {
    let st = this.servers.get(dsId);
    const want = (reason: FullReason): IntakeResult => {
      if (st) st.fullSeen = undefined;
      this.events.fullRequested?.(reason);
      return { ack: { session: m.session, ack: st?.session === m.session ? st.seq : 0, full: true }, changed: [] };
    };
    if (m.kind === 'full') {
      if (m.seq === 1) {
        st = { session: m.session, seq: 0, fullSeen: new Set(), digest: new ReportDigest(), refused: st?.refused ?? new Map(), detached: st?.detached ?? new Map() };
        // The digest restarts from what is recorded now (copies kept from before this
        // session included), so each change below moves it from a true value.
        for (const r of this.blocks.copiesOf(dsId)) st.digest.add(reportHash(r));
        for (const h of st.refused.values()) st.digest.add(h);
        for (const h of st.detached.values()) st.digest.add(h);
        this.servers.set(dsId, st);
      } else if (!st || st.session !== m.session || !st.fullSeen || m.seq !== st.seq + 1) return want('page-gap');
    } else {
      if (!st || st.session !== m.session || st.fullSeen) return want('unknown-session');
      if (m.seq <= st.seq) return { ack: { session: st.session, ack: st.seq }, changed: [] };
    }
    const changed: BlockReport[] = [];
    for (const r of m.blocks) {
      st.fullSeen?.add(r.id);
      if (await this.set(dsId, st, r, admit)) changed.push(r);
    }
    for (const id of m.removed ?? []) this.remove(dsId, st, id);
    if (m.kind === 'full' && m.last) {
      const seen = st.fullSeen!;
      st.fullSeen = undefined;
      for (const id of this.blocks.copyIdsOf(dsId)) if (!seen.has(id)) this.remove(dsId, st, id);
      for (const id of [...st.refused.keys()]) if (!seen.has(id)) this.remove(dsId, st, id);
      for (const id of [...st.detached.keys()]) if (!seen.has(id)) this.remove(dsId, st, id);
    }
    st.seq = m.seq;
    this.events.applied?.(m.kind, m.blocks.length + (m.removed?.length ?? 0));
    if (m.kind === 'delta' || m.last) {
      if (st.digest.count !== m.count || st.digest.toString() !== m.digest) return want('digest');
    }
    return { ack: { session: st.session, ack: st.seq }, changed };
  }

  /** Forgets a server's session and digest (it was refused, or forgotten). */
  drop(dsId: string): void {
    this.servers.delete(dsId);
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
  private async set(dsId: string, st: ServerReports, r: BlockReport, admit: Admit): Promise<boolean> {
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
    if (!(await admit(r))) {
      const old = this.blocks.removeCopy(dsId, r.id, true);
      if (old) st.digest.remove(reportHash(old));
      st.refused.set(r.id, h);
      st.digest.add(h);
      return false;
    }
    const old = this.blocks.setCopy(dsId, r);
    if (old) st.digest.remove(reportHash(old));
    st.digest.add(h);
    return true;
  }

  private remove(dsId: string, st: ServerReports, id: number): void {
    this.forgetOld(dsId, st, id);
  }
}
