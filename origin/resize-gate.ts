// Bounded image work: at most `concurrency` pipeline jobs run at once and at most `queue`
// wait; beyond that a request is refused at once with 503 Busy and Retry-After, because a
// queue that grows without bound only turns overload into timeouts for everyone.
import { UgcfsError } from '../src/base/errors.ts';

export interface GateStats {
  running: number;
  waiting: number;
}

export class ResizeGate {
  private running = 0;
  private readonly waiters: Array<() => void> = [];

  constructor(
    private readonly concurrency: number,
    private readonly queue: number,
    private readonly onQueueChange: (waiting: number) => void = () => {},
    private readonly onReject: () => void = () => {},
  ) {}

  stats(): GateStats {
    return { running: this.running, waiting: this.waiters.length };
  }

  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) {
      if (this.waiters.length >= this.queue) {
        this.onReject();
        throw new UgcfsError('UGCFS_ERR_BUSY', 'image pipeline is at capacity; retry shortly', {
          headers: { 'retry-after': '1', 'cache-control': 'no-store' },
        });
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        this.onQueueChange(this.waiters.length);
      });
      this.onQueueChange(this.waiters.length);
    } else {
      this.running++;
    }
    try {
      return await job();
    } finally {
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter, so `running` never dips and refills.
      if (next) next();
      else this.running--;
    }
  }
}
