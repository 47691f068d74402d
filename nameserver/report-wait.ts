// Repair held off while the block map is still being learnt. After a start or an election
// the name server has every block record but not yet where the copies are: the data
// servers' full reports bring that, a few at a time (report-intake.ts's turns). Until a
// block's holders have reported, it looks under-replicated, and at 8M blocks the whole map
// does; judging replication then is wasted work at best. Repair waits at least
// --startup-grace-ms after the start, and at least --dead-after-ms after it began leading
// (by then every live server has beaten, so "every live server" means something), then
// until every live data server's full report is in: at most --report-wait-ms, so that a
// server that never completes one does not hold the cluster's repairs for ever. Once over,
// it stays over until the next election: a single data server restarting later holds only
// the blocks it holds (repair.ts asks reportedWhole per server).
export interface ReportWaitOptions {
  startedAt: number;
  graceMs: number;
  deadAfterMs: number;
  maxMs: number;
  /** whether some live data server's full report is not in yet */
  pending: (now: number) => boolean;
  /** told once when the wait ends: how long it took since leading began, and whether it ran out */
  ended?: (ms: number, timedOut: boolean) => void;
}

export class ReportWait {
  private ledSince: number;
  private over = false;

  constructor(private readonly o: ReportWaitOptions) {
    this.ledSince = o.startedAt;
  }

  /** A new term: every server reports again. */
  restart(now: number): void {
    this.ledSince = now;
    this.over = false;
  }

  held(now: number): boolean {
    if (this.over) return false;
    const o = this.o;
    if (now < o.startedAt + o.graceMs || now < this.ledSince + o.deadAfterMs) return true;
    const timedOut = now >= this.ledSince + o.maxMs;
    if (!timedOut && o.pending(now)) return true;
    this.over = true;
    o.ended?.(now - this.ledSince, timedOut);
    return false;
  }
}
