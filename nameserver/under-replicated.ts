// The set of blocks with fewer live copies than their replica count, kept up to date by
// events instead of a walk over every block per tick: a block is re-counted when its
// record changes, a copy of it is reported or goes, a confirm window of it ends (a queue in
// time order), or a server holding it dies or comes back (found at the next tick, O(servers),
// then that server's copies only). Blocks loaded at start are "uncounted" until a report or
// the sweep (block-sweep.ts) looks at them, and count as under-replicated meanwhile.
import { PagedColumn } from './paged-column.ts';
import type { Registry } from './registry.ts';

/** A time after which a block must be looked at again (a confirm window ends). */
interface Recheck {
  at: number;
  id: number;
}

export class UnderReplicated {
  private readonly under = new Set<number>();
  /** 1 for blocks loaded but not yet counted */
  private readonly uncounted = new PagedColumn(Uint8Array);
  private uncountedCount = 0;
  /** confirm windows in the order they end (each is now + a fixed window, so appended in order) */
  private readonly rechecks: Recheck[] = [];
  private recheckHead = 0;
  /** server ids alive at the last tick: a change of liveness re-counts that server's blocks */
  private readonly aliveAtTick = new Set<string>();

  constructor(
    private readonly registry: Registry,
    /** true when the block may hold files and has fewer live copies than its replica count */
    private readonly short: (id: number, now: number) => boolean,
    /** blocks open for writes: members not yet reported are in no copy list */
    private readonly openBlocks: () => Iterable<number>,
  ) {}

  ids(): ReadonlySet<number> {
    return this.under;
  }

  count(): number {
    return this.under.size + this.uncountedCount;
  }

  markUncounted(id: number): void {
    if (this.uncounted.get(id) !== 0) return;
    this.uncounted.set(id, 1);
    this.uncountedCount++;
  }

  forget(id: number): void {
    this.under.delete(id);
    this.counted(id);
  }

  refresh(id: number, now: number): void {
    this.counted(id);
    if (this.short(id, now)) this.under.add(id);
    else this.under.delete(id);
  }

  recheckAt(at: number, id: number): void {
    const last = this.rechecks.at(-1);
    // Windows are a fixed length, so they end in the order they start; keep the queue sorted anyway.
    if (last && last.at > at) at = last.at;
    this.rechecks.push({ at: at + 1, id });
  }

  tick(now: number): void {
    const q = this.rechecks;
    while (this.recheckHead < q.length && q[this.recheckHead]!.at <= now) this.refresh(q[this.recheckHead++]!.id, now);
    if (this.recheckHead > 1024 && this.recheckHead * 2 > q.length) {
      q.splice(0, this.recheckHead);
      this.recheckHead = 0;
    }
    let changed = false;
    for (const ds of this.registry.list()) {
      const alive = this.registry.isAlive(ds, now);
      if (alive === this.aliveAtTick.has(ds.id)) continue;
      if (alive) this.aliveAtTick.add(ds.id);
      else this.aliveAtTick.delete(ds.id);
      changed = true;
      for (const id of this.registry.copies.blocksOf(this.registry.servers.of(ds.id))) this.refresh(id, now);
    }
    if (changed) for (const id of this.openBlocks()) this.refresh(id, now);
  }

  private counted(id: number): void {
    if (this.uncountedCount > 0 && this.uncounted.get(id) === 1) {
      this.uncounted.set(id, 0);
      this.uncountedCount--;
    }
  }
}
