// Persisted counters (file keys, block ids) handed out from leased ranges. The end of a
// range is written (synced) BEFORE any number from it is handed out, so after a SIGKILL
// the next start resumes past everything that may have been issued: a number is never
// issued twice, at worst a range's unused tail is skipped.
import { SYNC, type Store } from './state-db.ts';

export class PersistedSequence {
  private next = 0n;
  private end = 0n;
  private extending: Promise<void> | undefined;

  constructor(
    private readonly meta: Store<string>,
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

  /** The next unused number; never returned before, by this or any earlier process. */
  async take(): Promise<bigint> {
    while (this.next >= this.end) {
      this.extending ??= this.extend().finally(() => {
        this.extending = undefined;
      });
      await this.extending;
    }
    return this.next++;
  }

  /** The persisted lease end: every number below it may have been issued. */
  get leasedUpTo(): bigint {
    return this.end;
  }

  private async extend(): Promise<void> {
    let end = this.end + this.leaseSize;
    if (end > this.max + 1n) end = this.max + 1n;
    if (end <= this.next) throw new RangeError(`${this.name} sequence exhausted`);
    await this.meta.put(this.name, end.toString(), SYNC);
    this.end = end;
  }
}
