// The slow safety net under the event-driven block map: a bounded slice of blocks per
// maintenance tick is re-counted (under-replicated or not) and, on the leader, its copies'
// orders decided again. Events keep both right; the sweep catches what no event announces
// (a block whose every holder is gone since the name server started, an order lost with
// its reply), within one pass: blocks / SLICE ticks (8M blocks at 4,000 a tick of 500 ms:
// ~17 minutes), for a few ms a tick.
import type { Logger } from '../src/base/log.ts';
import type { BlockMap } from './block-map.ts';
import type { CopyOrders } from './copy-orders.ts';

/** Blocks looked at per tick. */
export const SWEEP_SLICE = 4000;

export class BlockSweep {
  private cursor = 0;
  private running = false;
  /** complete passes since start */
  passes = 0;

  constructor(
    private readonly blocks: BlockMap,
    private readonly orders: CopyOrders,
    private readonly log: Logger,
    private readonly slice = SWEEP_SLICE,
  ) {}

  /** One slice; a slice still running (an order's write) makes this tick skip. */
  tick(leading: boolean, now = Date.now()): void {
    if (this.running) return;
    const ids = this.blocks.idsFrom(this.cursor, this.slice);
    if (ids.length < this.slice) {
      this.cursor = 0;
      this.passes++;
    } else this.cursor = ids.at(-1)! + 1;
    for (const id of ids) this.blocks.refresh(id, now);
    if (!leading || ids.length === 0) return;
    this.running = true;
    void (async () => {
      for (const id of ids) await this.orders.evaluateBlock(id, now);
    })()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'block sweep failed; the next pass retries'))
      .finally(() => (this.running = false));
  }
}
