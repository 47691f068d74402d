// Bounded image work: at most `concurrency` pipeline jobs run at once and at most `queue`
// wait; beyond that a request is refused at once with 503 Busy and Retry-After, because a
// queue that grows without bound only turns overload into timeouts for everyone.
//
// Jobs may also carry a weight (a variant job: its source's pixels, origin/image-size.ts)
// and the weights running at once stay within `weightBudget`, so memory is bounded by what
// the images cost, not only by how many there are: many small photos resize side by side
// while two 100-megapixel sources do not run beside each other and more. A job runs alone
// when nothing else does, whatever its weight. Waiters start strictly in arrival order: a
// heavy job at the head holds the lighter ones behind it back until it fits, so no job
// waits forever behind a stream of small ones.
import { UgcfsError } from '../src/base/errors.ts';

export interface GateStats {
  running: number;
  waiting: number;
  /** the weight running now (variant jobs: source pixels) */
  weight: number;
}

/**
 * The weight budget of one origin process's variant jobs: the source pixels of two images
 * at --max-pixels — the most the two resize slots of earlier defaults could hold — shared
 * by the workers of `--workers N`, so more slots for small images never raise the worst
 * case. A job heavier than a worker's share still runs, alone.
 */
export function pixelBudget(maxPixels: number, workers = 1): number {
  return Math.floor((2 * maxPixels) / Math.max(1, workers));
}

interface Waiter {
  weight: number;
  start: () => void;
}

export class ResizeGate {
  private running = 0;
  private weight = 0;
  private readonly waiters: Waiter[] = [];

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
    private readonly onQueueChange: (waiting: number) => void = () => {},
    private readonly onReject: () => void = () => {},
    private readonly weightBudget = Number.POSITIVE_INFINITY,
  ) {}

  stats(): GateStats {
    return { running: this.running, waiting: this.waiters.length, weight: this.weight };
  }

  private fits(weight: number): boolean {
    return this.running < this.concurrency && (this.running === 0 || this.weight + weight <= this.weightBudget);
  }

  /** Runs `job` once a slot (and `weight` of the budget) is free; throws 503 Busy when the queue is full. */
  async run<T>(job: () => Promise<T>, weight = 0): Promise<T> {
    const w = Math.max(0, weight);
    if (this.waiters.length > 0 || !this.fits(w)) {
      if (this.waiters.length >= this.queue) {
        this.onReject();
        throw new UgcfsError('UGCFS_ERR_BUSY', 'image pipeline is at capacity; retry shortly', {
          headers: { 'retry-after': '1', 'cache-control': 'no-store' },
        });
      }
      // admit() counts the job in before it resolves this promise
      await new Promise<void>((start) => {
        this.waiters.push({ weight: w, start });
        this.onQueueChange(this.waiters.length);
      });
    } else {
      this.running++;
      this.weight += w;
    }
    try {
      return await job();
    } finally {
      this.running--;
      this.weight -= w;
      this.admit();
    }
  }

  /** Starts waiters from the head for as long as they fit. */
  private admit(): void {
    let started = false;
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.weight)) {
      const next = this.waiters.shift()!;
      this.running++;
      this.weight += next.weight;
      next.start();
      started = true;
    }
    if (started) this.onQueueChange(this.waiters.length);
  }
}
