// GET /status: the cluster overview (`ugcfs status --json` is a subset of it).
import type { ClusterStatus, DataserverStatus } from '../src/wire/protocol.ts';
import type { BlockMap } from './block-map.ts';
import type { Registry } from './registry.ts';

export function clusterStatus(registry: Registry, blocks: BlockMap, replicas: number, now = Date.now()): ClusterStatus {
  const all = blocks.all();
  const held = new Map<string, number>();
  for (const rec of all) {
    for (const id of rec.replicas) {
      const ds = registry.get(id);
      if (ds && blocks.holds(ds, rec, now)) held.set(id, (held.get(id) ?? 0) + 1);
    }
  }
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
    underReplicatedBlocks: blocks.underReplicated(now).length,
    blocks: all.length,
    replicas,
    usedBytes: live.reduce((s, d) => s + d.usedBytes, 0),
    freeBytes: live.reduce((s, d) => s + d.freeBytes, 0),
    operations: [],
  };
}
