// The needle index's entry cache (real LevelDB underneath): bounded, keeps what is read
// often, forgets what is not, and tells apart ids whose block or key do not fit the compact
// numeric cache id.
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { NeedleIndex, type IndexEntry } from '../../dataserver/needle-index.ts';
import { tempDir } from '../helpers/proc.ts';

const tmp = tempDir('ugcfs-index-cache-');
afterAll(() => tmp.cleanup());

const entry = (n: number): IndexEntry => ({ offset: n * 64, length: 64, cookie: n, flags: 0 });

describe('needle index cache', () => {
  it('stays within its bound and keeps the entries that are read', async () => {
    const index = await NeedleIndex.open(join(tmp.dir, 'lru'), { cacheEntries: 16 });
    try {
      // Entry 1 is read between every insertion, so it must outlive the 99 cold ones.
      await index.apply([index.putOp(7, 1n, entry(1))]);
      for (let k = 2n; k <= 100n; k++) {
        await index.apply([index.putOp(7, k, entry(Number(k)))]);
        expect(index.cached(7, 1n)).toEqual(entry(1));
      }
      let cached = 0;
      for (let k = 1n; k <= 100n; k++) if (index.cached(7, k)) cached++;
      expect(cached).toBeLessThanOrEqual(16);
      expect(index.cached(7, 100n)).toEqual(entry(100));
      expect(index.cached(7, 2n)).toBeUndefined();
      // Forgotten entries are still in LevelDB, and come back into the cache.
      expect(await index.get(7, 2n)).toEqual(entry(2));
      expect(index.cached(7, 2n)).toEqual(entry(2));
    } finally {
      await index.close();
    }
  });

  it('keeps large blocks and keys apart from small ones', async () => {
    const index = await NeedleIndex.open(join(tmp.dir, 'ids'), { cacheEntries: 100 });
    try {
      const ids: Array<[number, bigint]> = [
        [1, 5n],
        [1, (1n << 33n) + 5n],
        [1, (1n << 56n) - 1n],
        [(1 << 20) + 1, 5n],
        [2 ** 32 - 1, 5n],
        [2, 5n],
        [0, (1n << 33n) - 1n],
        [1, (1n << 33n) - 1n],
      ];
      await index.apply(ids.map(([b, k], i) => index.putOp(b, k, entry(i))));
      ids.forEach(([b, k], i) => expect(index.cached(b, k), `${b}/${k}`).toEqual(entry(i)));
      await index.apply([index.delOp(1, (1n << 33n) + 5n)]);
      expect(index.cached(1, (1n << 33n) + 5n)).toBeUndefined();
      expect(index.cached(1, 5n)).toEqual(entry(0));
      expect(await index.get(1, (1n << 33n) + 5n)).toBeUndefined();
    } finally {
      await index.close();
    }
  });

  it('caches nothing with a bound of 0', async () => {
    const index = await NeedleIndex.open(join(tmp.dir, 'off'), { cacheEntries: 0 });
    try {
      await index.apply([index.putOp(3, 9n, entry(9))]);
      expect(index.cached(3, 9n)).toBeUndefined();
      expect(await index.get(3, 9n)).toEqual(entry(9));
      expect(index.cached(3, 9n)).toBeUndefined();
    } finally {
      await index.close();
    }
  });
});
