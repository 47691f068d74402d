// Blocks taken out of writes and reconciliation for a while (repairing, moving, compacting,
// creating), and the deletes made meanwhile, which whoever copied the block replays to the
// copy (a copy in flight may have missed them).
export class BusyBlocks {
  private readonly reasons = new Map<number, string>();
  private readonly deletes = new Map<number, Set<string>>();

  set(id: number, reason: string): void {
    this.reasons.set(id, reason);
  }

  clear(id: number): void {
    this.reasons.delete(id);
    this.deletes.delete(id);
  }

  reason(id: number): string | undefined {
    return this.reasons.get(id);
  }

  /** Notes a delete made while the block is busy (ignored when it is not). */
  noteDelete(id: number, fid: string): void {
    if (!this.reasons.has(id)) return;
    let s = this.deletes.get(id);
    if (!s) this.deletes.set(id, (s = new Set()));
    s.add(fid);
  }

  takeDeletes(id: number): string[] {
    const s = this.deletes.get(id);
    this.deletes.delete(id);
    return s ? [...s] : [];
  }
}
