// The set of blocks with fewer live copies than their replica count, kept up to date by
// events instead of a walk over every block per tick: a block is re-counted when its
// record changes, a copy of it is reported or goes, a confirm window of it ends (a queue in
// time order), or a server holding it dies or comes back (found at the next tick, O(servers),
// then that server's copies only, re-counted in slices of a few ms between other work: a
// server with 40k copies takes ~0.15 s, and a name server too busy to answer heartbeats in
// time sees many servers flap at once; re-counting them all in one go blocked it for seconds,
// so more heartbeats timed out). Blocks loaded at start are "uncounted" until a report or
// the sweep (block-sweep.ts) looks at them, and count as under-replicated meanwhile. Blocks
// that join the set are also queued as news (takeFresh), which repair reads before going
// round the set with its cursor.
import { FifoQueue } from './fifo-queue.ts';
import { PagedColumn } from './paged-column.ts';
import type { Registry } from './registry.ts';

/** Newly under-replicated blocks kept for repair's first look; more wait for its cursor. */
const FRESH_MAX = 100_000;

/** Time a re-count of flipped servers' blocks runs before letting other work in. */
export const RECOUNT_SLICE_MS = 8;

/** A time after which a block must be looked at again (a confirm window ends). */
interface Recheck {
  at: number;
  id: number;
}

export class UnderReplicated {
  private readonly under = new Set<number>();
  /** blocks that joined `under` lately, for repair to look at first (takeFresh) */
  private readonly fresh = new FifoQueue<number>();
  /** 1 for blocks loaded but not yet counted */
  private readonly uncounted = new PagedColumn(Uint8Array);
  private uncountedCount = 0;
  /** confirm windows in the order they end (each is now + a fixed window, so appended in order) */
  private readonly rechecks = new FifoQueue<Recheck>();
  /** server ids alive at the last tick: a change of liveness re-counts that server's blocks */
  private readonly aliveAtTick = new Set<string>();
  /** servers whose liveness changed since their blocks were last re-counted: their blocks once the re-count begins, and how far it got */
  private readonly flipped = new Map<number, { ids?: number[]; alive: boolean; next: number; force: boolean }>();
  /** servers (by number) whose blocks were last re-counted with them alive */
  private readonly countedAlive = new Set<number>();
  private draining = false;

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
    if (!this.short(id, now)) this.under.delete(id);
    else if (!this.under.has(id)) {
      this.under.add(id);
      if (this.fresh.size < FRESH_MAX) this.fresh.push(id);
    }
  }

  /**
   * The oldest block that joined the set since it was last asked, or undefined: repair looks
   * at these before its cursor goes on round the set, so a server that just died has its
   * blocks looked at at once however many others wait their turn (repair delay, reports).
   * Blocks past FRESH_MAX are only in the set; the cursor finds them.
   */
  takeFresh(): number | undefined {
    return this.fresh.shift();
  }

  clearFresh(): void {
    this.fresh.clear();
  }

  recheckAt(at: number, id: number): void {
    const last = this.rechecks.last();
    // Windows are a fixed length, so they end in the order they start; keep the queue sorted anyway.
    if (last && last.at > at) at = last.at;
    this.rechecks.push({ at: at + 1, id });
  }

  tick(now: number): void {
    for (let r = this.rechecks.peek(); r && r.at <= now; r = this.rechecks.peek()) {
      this.rechecks.shift();
      this.refresh(r.id, now);
    }
    let changed = false;
    for (const ds of this.registry.list()) {
      const alive = this.registry.isAlive(ds, now);
      if (alive === this.aliveAtTick.has(ds.id)) continue;
      if (alive) this.aliveAtTick.add(ds.id);
      else this.aliveAtTick.delete(ds.id);
      changed = true;
      // Only noted here: the re-count runs in slices (drain). A later flip of the same server
      // replaces a pending one, and one that ends where the last re-count left it is dropped.
      // A re-count cut short by the flip leaves its blocks counted either way: that one must run.
      const n = this.registry.servers.of(ds.id);
      const prev = this.flipped.get(n);
      this.flipped.set(n, { alive, next: 0, force: prev !== undefined && (prev.ids !== undefined || prev.force) });
    }
    if (changed) {
      for (const id of this.openBlocks()) this.refresh(id, now);
      this.drain();
    }
  }

  /** Re-counts flipped servers' blocks for up to RECOUNT_SLICE_MS, then again on the next loop round until done. */
  private readonly drain = (): void => {
    if (this.draining) return;
    const end = performance.now() + RECOUNT_SLICE_MS;
    const now = Date.now();
    for (const [n, f] of this.flipped) {
      if (!f.ids) {
        // Flapped back: its copies' own events kept their blocks right meanwhile.
        if (!f.force && f.alive === this.countedAlive.has(n)) {
          this.flipped.delete(n);
          continue;
        }
        f.ids = this.registry.copies.blocksOf(n);
      }
      while (f.next < f.ids.length) {
        this.refresh(f.ids[f.next++]!, now);
        if ((f.next & 255) === 0 && performance.now() > end) return this.drainLater();
      }
      if (f.alive) this.countedAlive.add(n);
      else this.countedAlive.delete(n);
      this.flipped.delete(n);
      if (performance.now() > end) return this.drainLater();
    }
  };

  private drainLater(): void {
    if (this.flipped.size === 0) return;
    this.draining = true;
    setImmediate(() => {
      this.draining = false;
      this.drain();
    });
  }

  private counted(id: number): void {
    if (this.uncountedCount > 0 && this.uncounted.get(id) === 1) {
      this.uncounted.set(id, 0);
      this.uncountedCount--;
    }
  }
}
