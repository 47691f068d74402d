// Full-report pages are applied one at a time, each in slices of a few milliseconds, so that
// between two slices the event loop answers assigns, lookups and the small delta beats.
// Pages applied side by side (16 servers have the turn at once after a restart) put a slice
// of each into every loop round; an assign needs several rounds (its body, LevelDB, the
// reply) and so waited over a second at 8M blocks. One page at a time costs the senders
// nothing they notice: a page's heartbeat may take 30 s, and the work is the same.
export type Pause = () => Promise<void> | undefined;

/** Slice length: short enough for an assign's round, long enough to keep the switching cheap. */
export const PAGE_SLICE_MS = 8;

export class PagePacer {
  private tail: Promise<void> = Promise.resolve();
  private sliceStart = 0;

  constructor(private readonly sliceMs = PAGE_SLICE_MS) {}

  /** Runs `job` once the jobs queued before it are done; the job calls `pause()` now and then and awaits what it returns. */
  run<T>(job: (pause: Pause) => Promise<T>): Promise<T> {
    const p = this.tail.then(() => {
      this.sliceStart = performance.now();
      return job(this.pause);
    });
    this.tail = p.then(
      () => undefined,
      () => undefined,
    );
    return p;
  }

  /** undefined while the slice lasts; then a promise that resolves on the next loop round */
  private readonly pause: Pause = () => {
    if (performance.now() - this.sliceStart < this.sliceMs) return undefined;
    return new Promise<void>((done) =>
      setImmediate(() => {
        this.sliceStart = performance.now();
        done();
      }),
    );
  };
}

/** A pause for jobs run outside the pacer (deltas, which are small): always the next loop round. */
export const nextRound: Pause = () => new Promise<void>((done) => setImmediate(done));
