// The slow safety net under the event-driven block map: a bounded slice of blocks per
// maintenance tick is re-counted (under-replicated or not) and, on the leader, its copies'
// orders decided again. Events keep both right; the sweep catches what no event announces
// (a block whose every holder is gone since the name server started, an order lost with
// its reply), within one pass: blocks / SLICE ticks (8M blocks at 4,000 a tick of 500 ms:
// ~17 minutes). A slice is walked in goes of a few ms with the loop's other work between
// them: done in one go, a slice held the loop long enough to show in assigns' p99 at 8M.
import type { Logger } from '../src/base/log.ts';
import type { BlockMap } from './block-map.ts';
import type { CopyOrders } from './copy-orders.ts';
import { PagePacer } from './page-pacer.ts';

/** Blocks looked at per tick. */
export const SWEEP_SLICE = 4000;
/** Time one go of a slice runs before the loop's other work (assigns, beats) gets a turn. */
export const SWEEP_GO_MS = 2;

export class BlockSweep {
  private cursor = 0;
  private running = false;
  /** complete passes since start */
  passes = 0;
  /** walks a slice in goes of `goMs`, as full-report pages are applied */
  private readonly pacer: PagePacer;

  constructor(
    private readonly blocks: Pick<BlockMap, 'idsFrom' | 'refresh'>,
    private readonly orders: Pick<CopyOrders, 'evaluateBlock' | 'mayOrderBlock'>,
    private readonly log: Logger,
    private readonly slice = SWEEP_SLICE,
    goMs = SWEEP_GO_MS,
  ) {
    this.pacer = new PagePacer(goMs);
  }

  /** Starts one slice; a slice still being walked makes this tick skip. */
  tick(leading: boolean): void {
    if (this.running) return;
    const ids = this.blocks.idsFrom(this.cursor, this.slice);
    if (ids.length < this.slice) {
      this.cursor = 0;
      this.passes++;
    } else this.cursor = ids.at(-1)! + 1;
    if (ids.length === 0) return;
    this.running = true;
    this.walk(ids, leading)
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'block sweep failed; the next pass retries'))
      .finally(() => (this.running = false));
  }

  /** True while a slice is being walked. */
  get busy(): boolean {
    return this.running;
  }

  private walk(ids: readonly number[], leading: boolean): Promise<void> {
    // Allocation-free for the usual block (no order due: decided from the columns), so the
    // sweep's garbage does not add young-generation collections to assigns' tail.
    return this.pacer.run(async (pause) => {
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        const now = Date.now();
        this.blocks.refresh(id, now);
        if (leading && this.orders.mayOrderBlock(id)) await this.orders.evaluateBlock(id, now);
        const go = pause();
        if (go) await go;
      }
    });
  }
}
