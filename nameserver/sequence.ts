// Persisted counters (file keys, block ids) handed out from leased ranges. The end of a
// range is written (synced) BEFORE any number from it is handed out, so after a SIGKILL
// the next start resumes past everything that may have been issued: a number is never
// issued twice, at worst a range's unused tail is skipped.
import type { Namespace } from './metadata-store/index.ts';

export class PersistedSequence {
  private next = 0n;
  private end = 0n;
  /** every write of the lease end goes through this chain, so writes never reorder */
  private chain: Promise<void> = Promise.resolve();
  private extending: Promise<void> | undefined;

  constructor(
    private readonly meta: Namespace<string>,
    private readonly name: string,
    private readonly leaseSize: bigint,
    private readonly max: bigint,
    private readonly first = 1n,
  ) {}

  async open(): Promise<void> {
    const stored = await this.meta.get(this.name);
    this.next = stored === undefined ? this.first : BigInt(stored);
    this.end = this.next;
  }

  /** A standby follows the leader's lease end (state-follow.ts): numbers below it may be issued. */
  follow(value: unknown): void {
    if (typeof value !== 'string' || !/^\d+$/.test(value)) return;
    const end = BigInt(value);
    if (end > this.end) this.next = this.end = end;
  }

  /** The next unused number; never returned before, by this or any earlier process. */
  async take(): Promise<bigint> {
    while (this.next >= this.end) {
      this.extending ??= this.serial(async () => {
        if (this.next < this.end) return;
        await this.persistEnd(this.next + this.leaseSize);
      }).finally(() => {
        this.extending = undefined;
      });
      await this.extending;
    }
    return this.next++;
  }

  /**
   * Makes sure `n` is never handed out (it exists already, e.g. a block found on a data
   * server that this state does not know): the sequence moves past it, persisted first.
   */
  skipThrough(n: bigint): Promise<void> {
    if (n < this.next) return Promise.resolve();
    return this.serial(async () => {
      if (n < this.next) return;
      if (n + 1n > this.end) await this.persistEnd(n + 1n + this.leaseSize);
      this.next = n + 1n;
    });
  }

  /** The persisted lease end: every number below it may have been issued. */
  get leasedUpTo(): bigint {
    return this.end;
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async persistEnd(wanted: bigint): Promise<void> {
    const end = wanted > this.max + 1n ? this.max + 1n : wanted;
    if (end <= this.next) throw new RangeError(`${this.name} sequence exhausted`);
    await this.meta.put(this.name, end.toString());
    this.end = end;
  }
}
