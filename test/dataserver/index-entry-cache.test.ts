// The typed-array entry cache against a plain Map as the model: every id it answers for
// carries the entry last set for it, it never holds more than its bound, deletes and the
// backward shift of its probe runs lose nothing else, ids differing only in the high words
// of the key or in the block stay apart, and entries read since the hand last passed them
// survive an eviction sweep.
import { describe, expect, it } from 'vitest';
import { IndexEntryCache } from '../../dataserver/index-entry-cache.ts';
import type { IndexEntry } from '../../dataserver/needle-index.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const entry = (n: number): IndexEntry => ({ offset: n * 4096 + 2 ** 40, length: (n % 9000) + 40, cookie: (n * 2654435761) >>> 0, flags: n % 3 });

describe('index entry cache', () => {
  it('agrees with a Map on every id it still holds, through sets, overwrites and deletes', () => {
    for (const [capacity, idSpace] of [[64, 200], [1000, 1500], [5, 50], [1, 3]] as const) {
      const cache = new IndexEntryCache(capacity);
      const model = new Map<string, IndexEntry>();
      const r = rng(capacity * 7 + idSpace);
      const ids: Array<[number, bigint]> = [];
      for (let i = 0; i < idSpace; i++) {
        const kind = i % 4;
        // small keys, keys past 2^53 (BigInt split), and blocks that collide in the hash's low bits
        const key = kind === 1 ? (1n << 55n) + BigInt(i) : kind === 2 ? BigInt(i) << 32n : BigInt(i);
        ids.push([kind === 3 ? 2 ** 32 - 1 - i : i % 7, key]);
      }
      for (let step = 0; step < 20_000; step++) {
        const [block, key] = ids[Math.floor(r() * ids.length)]!;
        const name = `${block}/${key}`;
        const op = r();
        if (op < 0.55) {
          const e = entry(step);
          cache.set(block, key, e);
          model.set(name, e);
          expect(cache.get(block, key)).toEqual(e);
        } else if (op < 0.7) {
          cache.delete(block, key);
          model.delete(name);
          expect(cache.get(block, key)).toBeUndefined();
        } else {
          const got = cache.get(block, key);
          if (got !== undefined) expect(got).toEqual(model.get(name));
        }
        expect(cache.size).toBeLessThanOrEqual(capacity);
      }
      // nothing answers with a stale or foreign entry
      let held = 0;
      for (const [block, key] of ids) {
        const got = cache.get(block, key);
        if (got === undefined) continue;
        held++;
        expect(got).toEqual(model.get(`${block}/${key}`));
      }
      expect(held).toBe(cache.size);
      expect(held).toBeGreaterThan(0);
    }
  });

  it('keeps entries that are read while cold ones stream through', () => {
    const cache = new IndexEntryCache(32);
    const hot = [1n, 2n, 3n, 4n];
    for (const k of hot) cache.set(9, k, entry(Number(k)));
    for (let k = 100n; k < 2000n; k++) {
      cache.set(9, k, entry(Number(k)));
      for (const h of hot) expect(cache.get(9, h), `hot ${h} after cold ${k}`).toEqual(entry(Number(h)));
    }
    expect(cache.size).toBe(32);
    expect(cache.get(9, 1999n)).toEqual(entry(1999));
    expect(cache.get(9, 100n)).toBeUndefined();
  });

  it('holds a full table without losing entries that are not evicted', () => {
    const cache = new IndexEntryCache(1000);
    for (let k = 0n; k < 1000n; k++) cache.set(Number(k % 3n), k, entry(Number(k)));
    expect(cache.size).toBe(1000);
    for (let k = 0n; k < 1000n; k++) expect(cache.get(Number(k % 3n), k)).toEqual(entry(Number(k)));
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get(0, 0n)).toBeUndefined();
  });

  it('holds nothing with a bound of 0', () => {
    const cache = new IndexEntryCache(0);
    cache.set(1, 1n, entry(1));
    expect(cache.get(1, 1n)).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});
