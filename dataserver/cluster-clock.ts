// Time for decisions that can bring deleted data back. Tombstone expiry must not follow one
// machine's wall clock: a data server whose clock jumps a day ahead would drop a day of
// tombstones early, and a later verify --repair would copy the deleted files back from a
// replica that missed the delete. So two clocks must agree: the name server's (handed out
// in every heartbeat answer, carried forward here by the monotonic clock) and our own.
// - `expiryNow()` is the EARLIER of the two, and undefined until the name server has
//   answered once: nothing expires on one clock's word alone.
// - `stampNow()` (the time written into a tombstone) is the LATER of the two, so a clock
//   that runs behind makes a tombstone look younger, never older.
import { performance } from 'node:perf_hooks';

export class ClusterClock {
  private nsAt: number | undefined;
  private monoAt = 0;

  constructor(private readonly wallNow: () => number = Date.now, private readonly monoNow: () => number = () => performance.now()) {}

  /** The name server's wall clock, as its answer carried it. */
  observe(nameserverNowMs: number): void {
    if (!Number.isFinite(nameserverNowMs) || nameserverNowMs <= 0) return;
    this.nsAt = Math.floor(nameserverNowMs);
    this.monoAt = this.monoNow();
  }

  /** The name server's time now, or undefined before it first answered. */
  /** Whole milliseconds, as a record's time field holds them. */
  nameserverNow(): number | undefined {
    return this.nsAt === undefined ? undefined : Math.floor(this.nsAt + (this.monoNow() - this.monoAt));
  }

  expiryNow(): number | undefined {
    const ns = this.nameserverNow();
    return ns === undefined ? undefined : Math.min(ns, this.wallNow());
  }

  stampNow(): number {
    return Math.floor(Math.max(this.nameserverNow() ?? 0, this.wallNow()));
  }
}
