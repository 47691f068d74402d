// The allocator's pool of writable blocks is computed at most every POOL_TTL_MS, and the
// block each assign picks is checked again (nameserver/allocator.ts). A block that stops
// being writable between two computations must get no more fids.
import { describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { Allocator, POOL_TTL_MS } from '../../nameserver/allocator.ts';
import type { BlockMap, BlockRecord } from '../../nameserver/block-map.ts';
import type { DataserverEntry, Registry } from '../../nameserver/registry.ts';
import type { PersistedSequence } from '../../nameserver/sequence.ts';
import type { Metrics } from '../../src/base/metrics.ts';

function setup(blockIds: number[]) {
  const servers = ['ds-1', 'ds-2'].map((id) => ({ id, url: `http://127.0.0.1:1/${id}`, rack: '', freeBytes: 1e12, blockSize: 1 << 30 }) as DataserverEntry);
  const recs = new Map<number, BlockRecord>(blockIds.map((id) => [id, { id, replication: 2, state: 'writable', replicas: ['ds-1', 'ds-2'], createdAt: 0 }]));
  const unwritable = new Set<number>();
  let computed = 0;
  const blocks = {
    writableCandidates: () => {
      computed++;
      return [...recs.values()];
    },
    get: (id: number) => recs.get(id),
    isWritable: (r: BlockRecord) => !unwritable.has(r.id),
  } as unknown as BlockMap;
  const registry = { alive: () => servers, aliveCount: () => servers.length, get: (id: string) => servers.find((d) => d.id === id) } as unknown as Registry;
  let key = 1n;
  const keys = { take: async () => key++ } as unknown as PersistedSequence;
  const metrics = { assigns: { inc: () => {} } } as unknown as Metrics;
  // one writable block wanted: the pool is never short, so nothing is created
  const allocator = new Allocator({ blocks, registry, keys, blockIds: keys, secret: 's', log: pino({ level: 'silent' }), metrics, writableBlocks: 1 });
  return { allocator, unwritable, computed: () => computed };
}

describe("the allocator's pool of writable blocks", () => {
  it('is computed once for a burst of assigns, and a block no longer writable gets no fid even before the next computation', async () => {
    const { allocator, unwritable, computed } = setup([7, 8]);
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) seen.add((await allocator.assign(2)).block);
    expect([...seen].sort()).toEqual([7, 8]);
    expect(computed()).toBe(1);
    unwritable.add(7);
    for (let i = 0; i < 40; i++) expect((await allocator.assign(2)).block).toBe(8);
    expect(computed()).toBe(1);
    // both gone: the pool is computed again at once, and with nothing writable the assign fails
    unwritable.add(8);
    await expect(allocator.assign(2)).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' });
  });

  it('takes in a block that became writable once the pool is older than POOL_TTL_MS', async () => {
    const { allocator, unwritable, computed } = setup([7, 8]);
    unwritable.add(8);
    expect((await allocator.assign(2)).block).toBe(7);
    unwritable.delete(8);
    await new Promise((r) => setTimeout(r, POOL_TTL_MS + 20));
    const seen = new Set<number>();
    for (let i = 0; i < 40; i++) seen.add((await allocator.assign(2)).block);
    expect(seen.has(8)).toBe(true);
    expect(computed()).toBe(2);
  });
});
