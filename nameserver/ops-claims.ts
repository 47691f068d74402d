// Which blocks the operations are working on. A claim is the block map's busy mark (the
// block takes no writes and heartbeats leave it alone; the repairer skips it), so a move,
// a compaction and an automatic repair never touch the same block at once. Compactions of
// one block on different servers may share a claim; everything else is exclusive.
import type { BlockMap } from './block-map.ts';

export type ClaimReason = 'moving' | 'compacting' | 'verifying';

export class BlockClaims {
  private readonly held = new Map<number, { reason: ClaimReason; count: number }>();

  constructor(private readonly blocks: BlockMap) {}

  /** True when the block is now ours; false when someone (another op, the repairer) has it. */
  claim(id: number, reason: ClaimReason): boolean {
    const mine = this.held.get(id);
    if (mine) {
      if (reason !== 'compacting' || mine.reason !== 'compacting') return false;
      mine.count++;
      return true;
    }
    if (this.blocks.busyReason(id) !== undefined) return false;
    this.blocks.setBusy(id, reason);
    this.held.set(id, { reason, count: 1 });
    return true;
  }

  release(id: number): void {
    const mine = this.held.get(id);
    if (!mine) return;
    if (--mine.count > 0) return;
    this.held.delete(id);
    this.blocks.clearBusy(id);
  }

  has(id: number): boolean {
    return this.held.has(id);
  }
}
