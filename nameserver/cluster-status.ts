// GET /status: the cluster overview (`ugcfs status --json` is a subset of it).
import type { ClusterStatus, DataserverStatus } from '../src/wire/protocol.ts';
import type { BlockMap } from './block-map.ts';
import type { Registry } from './registry.ts';

export function clusterStatus(registry: Registry, blocks: BlockMap, replicas: number, now = Date.now()): ClusterStatus {
  // Counted from each server's copies: O(copies), no record materialised.
  const held = new Map<string, number>();
  for (const e of registry.list()) held.set(e.id, blocks.countHeld(e));
  const dataservers: DataserverStatus[] = registry.list().map((e) => ({
    id: e.id,
    url: e.url,
    rack: e.rack,
    alive: registry.isAlive(e, now),
    blocks: held.get(e.id) ?? 0,
    usedBytes: e.usedBytes,
    freeBytes: e.freeBytes,
    ...(e.lastSeen > 0 ? { lastSeenMs: now - e.lastSeen } : {}),
    draining: e.draining,
    ...(e.quarantine && e.quarantine.files > 0 ? { quarantine: e.quarantine } : {}),
  }));
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
