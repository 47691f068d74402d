// What a power cut or a lying disk can leave behind, made by hand on real files and a real
// LevelDB, and what opening the store does with it: it adopts what can be proven whole,
// sets aside in quarantine/ what cannot, and never unlinks or cuts data it cannot prove is
// garbage.
import { cpSync, existsSync, readFileSync, readdirSync, renameSync, rmSync, statSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockStore } from '../../dataserver/block-store.ts';
import { ClusterClock } from '../../dataserver/cluster-clock.ts';
import { parseQuarantineName } from '../../dataserver/quarantine.ts';
import { encodeNeedle } from '../../dataserver/needle.ts';
import { META_INCOMPLETE } from '../../dataserver/needle-index.ts';
import { tempDir } from '../helpers/proc.ts';
import { recordData } from './record-data.ts';

const tmp = tempDir('ugcfs-power-');
afterAll(() => tmp.cleanup());
let seq = 0;
const freshDir = () => join(tmp.dir, `p${++seq}`);
const BLOCK_SIZE = 1 << 20;
const meta = (key: bigint) => ({ key, cookie: Number(key), uploadTime: 1_700_000_000_000, mime: 'image/png', owner: 'seller-9' });
const data = (key: bigint) => recordData(key, 2500);
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => BigInt(from + i));

const files = (dir: string, sub: string) => (existsSync(join(dir, sub)) ? readdirSync(join(dir, sub)).sort() : []);

async function expectContents(s: BlockStore, block: number, live: bigint[], gone: bigint[]): Promise<void> {
  for (const k of live) {
    const n = await s.read(block, k, Number(k));
    expect(Buffer.compare(n.data, data(k)), `key ${k}`).toBe(0);
  }
  for (const k of gone) await expect(s.read(block, k, Number(k)), `key ${k}`).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
}

describe('a power cut during compaction', () => {
  it('an index that lost the switch (as it was before compaction) does not empty the block: the new generation is adopted and rescanned', async () => {
    const dir = freshDir();
    const keys = range(1, 14);
    const deleted = [3n, 7n, 11n, 12n];
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    await s.createBlock(1);
    for (const k of keys) await s.put(1, meta(k), data(k));
    for (const k of deleted) await s.delete(1, k, Number(k));
    await s.close();
    // What survives a power cut that the switch batch never reached the disk in: the index as
    // it was before the compaction, beside the block files as they are after it.
    cpSync(join(dir, 'index'), join(dir, 'index-before'), { recursive: true });
    const c = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    await c.compact(1);
    await c.close();
    expect(files(dir, 'blocks')).toEqual(['1.1.blk']);
    rmSync(join(dir, 'index'), { recursive: true });
    renameSync(join(dir, 'index-before'), join(dir, 'index'));

    const again = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      const live = keys.filter((k) => !deleted.includes(k));
      await expectContents(again, 1, live, deleted);
      expect(again.block(1).report()).toMatchObject({ gen: 1, liveCount: live.length });
      expect(files(dir, 'blocks')).toEqual(['1.1.blk']);
      expect((await again.scrub(1)).bad).toEqual([]);
      // the block goes on taking writes at its real end
      await again.put(1, meta(40n), data(40n));
      await expectContents(again, 1, [40n], []);
    } finally {
      await again.close();
    }
  });

  it('a leftover generation is set aside in quarantine/, never unlinked', async () => {
    const dir = freshDir();
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    await s.createBlock(1);
    for (const k of range(1, 5)) await s.put(1, meta(k), data(k));
    await s.close();
    // an unfinished compaction's output: the index still names generation 0
    cpSync(join(dir, 'blocks', '1.0.blk'), join(dir, 'blocks', '1.1.blk'));
    const again = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      await expectContents(again, 1, range(1, 5), []);
      expect(files(dir, 'blocks')).toEqual(['1.0.blk']);
      const q = files(dir, 'quarantine');
      expect(q).toHaveLength(1);
      expect(parseQuarantineName(q[0]!)).toMatchObject({ reason: 'leftover-generation', source: '1.1.blk' });
      expect(readFileSync(join(dir, 'quarantine', q[0]!)).equals(readFileSync(join(dir, 'blocks', '1.0.blk')))).toBe(true);
      expect(again.quarantineStats()).toEqual({ files: 1, bytes: statSync(join(dir, 'blocks', '1.0.blk')).size });
    } finally {
      await again.close();
    }
  });
});

describe('tails and unfinished copies', () => {
  it('a torn tail is copied to quarantine/ before it is cut', async () => {
    const dir = freshDir();
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    await s.createBlock(1);
    for (const k of range(1, 3)) await s.put(1, meta(k), data(k));
    await s.close();
    const path = join(dir, 'blocks', '1.0.blk');
    const size = statSync(path).size;
    const whole = encodeNeedle(meta(9n), data(9n));
    const torn = whole.subarray(0, whole.length - 100);
    appendFileSync(path, torn);
    const again = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      expect(again.recovered.cutBytes).toBe(torn.length);
      expect(statSync(path).size).toBe(size);
      const q = files(dir, 'quarantine');
      expect(q).toHaveLength(1);
      expect(parseQuarantineName(q[0]!)).toMatchObject({ reason: 'torn-tail', source: `1.0.blk.tail-${size}` });
      expect(readFileSync(join(dir, 'quarantine', q[0]!)).equals(torn)).toBe(true);
    } finally {
      await again.close();
    }
  });

  it('an incomplete copy (a pull that never finished) is set aside, not deleted, and not served', async () => {
    const dir = freshDir();
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    await s.createBlock(2, META_INCOMPLETE);
    await s.close();
    appendFileSync(join(dir, 'blocks', '2.0.blk'), encodeNeedle(meta(1n), data(1n)));
    const again = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      expect(again.has(2)).toBe(false);
      expect(files(dir, 'blocks')).toEqual([]);
      const q = files(dir, 'quarantine');
      expect(q.map((n) => parseQuarantineName(n)?.reason)).toEqual(['incomplete-copy']);
    } finally {
      await again.close();
    }
  });
});

describe('quarantine', () => {
  it('a block removed on a name server\'s order is set aside; expiry needs the cluster clock; explicit removal works', async () => {
    const dir = freshDir();
    let wall = Date.now();
    const clock = new ClusterClock(() => wall);
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE, clock, quarantineKeepMs: 3_600_000 });
    try {
      for (const id of [5, 6]) {
        await s.createBlock(id);
        await s.put(id, meta(1n), data(1n));
        await s.quarantineBlock(id, 'extra copy');
      }
      expect(s.has(5)).toBe(false);
      await expect(s.read(5, 1n, 1)).rejects.toMatchObject({ code: 'UGCFS_ERR_BLOCK_NOT_FOUND' });
      expect(files(dir, 'blocks')).toEqual([]);
      const q = s.ctx.quarantine.list();
      expect(q.map((i) => i.reason)).toEqual(['nameserver-order', 'nameserver-order']);
      // Our own clock two hours ahead is not enough: the name server has not spoken yet.
      wall += 2 * 3_600_000;
      expect(await s.expireQuarantine()).toBe(0);
      // The name server's clock says now (before the jump): still the earlier of the two decides.
      clock.observe(wall - 2 * 3_600_000);
      expect(await s.expireQuarantine()).toBe(0);
      // Both agree that two hours passed.
      clock.observe(wall);
      expect(await s.ctx.quarantine.remove(q[0]!.name)).toBe(true);
      expect(await s.ctx.quarantine.remove(q[0]!.name)).toBe(false);
      expect(await s.expireQuarantine()).toBe(1);
      expect(files(dir, 'quarantine')).toEqual([]);
      expect(s.quarantineStats()).toEqual({ files: 0, bytes: 0 });
      // An empty copy (an abandoned creation) holds nothing to keep: removed outright.
      await s.createBlock(7);
      await s.quarantineBlock(7, 'abandoned');
      expect(s.has(7)).toBe(false);
      expect(files(dir, 'blocks')).toEqual([]);
      expect(files(dir, 'quarantine')).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
