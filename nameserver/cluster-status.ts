// GET /status: the cluster overview (`ugcfs status --json` is a subset of it).
import type { ClusterStatus, DataserverStatus } from '../src/wire/protocol.ts';
import type { BlockMap } from './block-map.ts';
import type { DataserverEntry, Registry } from './registry.ts';

/**
 * Copies each server holds that count, counted from its copies: O(all copies), some 50 ms a
 * million. When counting took 10 ms or more, the counts are reused for ten times as long,
 * so status polled without pause costs the name server at most a tenth of its time.
 */
class HeldCounts {
  private counts = new Map<string, number>();
  private until = 0;

  get(registry: Registry, blocks: BlockMap, now: number): Map<string, number> {
    if (now < this.until) return this.counts;
    const t0 = performance.now();
    const counts = new Map<string, number>();
    for (const e of registry.list()) counts.set(e.id, blocks.countHeld(e));
    this.counts = counts;
    const ms = performance.now() - t0;
    this.until = ms < 10 ? 0 : Date.now() + 10 * ms;
    return counts;
  }
}

const heldCounts = new WeakMap<BlockMap, HeldCounts>();

/** One data server as status shows it; `held` is how many of its copies count. */
export function dataserverStatus(registry: Registry, e: DataserverEntry, held: number, now = Date.now()): DataserverStatus {
  return {
    id: e.id,
    url: e.url,
    rack: e.rack,
    alive: registry.isAlive(e, now),
    blocks: held,
    usedBytes: e.usedBytes,
    freeBytes: e.freeBytes,
    ...(e.lastSeen > 0 ? { lastSeenMs: now - e.lastSeen } : {}),
    draining: e.draining,
    ...(e.quarantine && e.quarantine.files > 0 ? { quarantine: e.quarantine } : {}),
  };
}

export function clusterStatus(registry: Registry, blocks: BlockMap, replicas: number, now = Date.now()): ClusterStatus {
  let cache = heldCounts.get(blocks);
  if (!cache) heldCounts.set(blocks, (cache = new HeldCounts()));
  const held = cache.get(registry, blocks, now);
  const dataservers = registry.list().map((e) => dataserverStatus(registry, e, held.get(e.id) ?? 0, now));
  const live = dataservers.filter((d) => d.alive);
  return {
    dataservers,
    underReplicatedBlocks: blocks.underReplicatedCount(now),
    blocks: blocks.holdingCount,
    replicas,
    usedBytes: live.reduce((s, d) => s + d.usedBytes, 0),
    freeBytes: live.reduce((s, d) => s + d.freeBytes, 0),
    operations: [],
  };
}
