// The storage engine against real files and a real LevelDB: damage detection, tail
// recovery, compaction (including a SIGKILL at each of its steps) and scrub.
import { spawn } from 'node:child_process';
import { appendFileSync, openSync, readdirSync, readSync, rmSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockStore } from '../../dataserver/block-store.ts';
import { encodeNeedle } from '../../dataserver/needle.ts';
import { createMetrics } from '../../src/base/metrics.ts';
import { ROOT, tempDir } from '../helpers/proc.ts';
import { recordData } from './record-data.ts';

const tmp = tempDir('ugcfs-store-');
afterAll(() => tmp.cleanup());
let seq = 0;
const freshDir = () => join(tmp.dir, `s${++seq}`);
const BLOCK_SIZE = 1 << 20;

const meta = (key: bigint) => ({ key, cookie: Number(key), uploadTime: 1_700_000_000_000, mime: 'image/jpeg', owner: 'seller-1' });
const data = (key: bigint) => recordData(key, 3000);

async function fill(dir: string, keys: bigint[], deleted: bigint[] = []): Promise<void> {
  const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
  await s.createBlock(1);
  await Promise.all(keys.map((k) => s.put(1, meta(k), data(k))));
  for (const k of deleted) await s.delete(1, k, Number(k));
  await s.close();
}

function blockFiles(dir: string): string[] {
  return readdirSync(join(dir, 'blocks')).sort();
}

async function expectContents(s: BlockStore, live: bigint[], gone: bigint[]): Promise<void> {
  for (const k of live) {
    const n = await s.read(1, k, Number(k));
    expect(Buffer.compare(n.data, data(k)), `key ${k}`).toBe(0);
    expect(n.mime).toBe('image/jpeg');
  }
  for (const k of gone) await expect(s.read(1, k, Number(k))).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => BigInt(from + i));

describe('reads', () => {
  it('a read is one index lookup and one positioned read', async () => {
    const dir = freshDir();
    await fill(dir, range(1, 20));
    const { metrics, registry } = createMetrics('dataserver');
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE, metrics });
    try {
      for (const k of range(1, 20)) await s.read(1, k, Number(k));
      const values = async (name: string) => ((await registry.getSingleMetric(name)!.get()).values).reduce((a, v) => a + v.value, 0);
      expect(await values('ugcfs_needle_reads_total')).toBe(20);
      expect(await values('ugcfs_block_preads_total')).toBe(20);
      expect(await values('ugcfs_index_lookups_total')).toBe(20);
    } finally {
      await s.close();
    }
  });

  it('a wrong cookie is answered exactly like a missing file', async () => {
    const dir = freshDir();
    await fill(dir, [7n]);
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      const wrong = await s.read(1, 7n, 8).catch((e: Error) => e);
      const missing = await s.read(1, 8n, 8).catch((e: Error) => e);
      expect(wrong).toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND', message: (missing as Error).message });
      await expect(s.delete(1, 7n, 8)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
      await expectContents(s, [7n], []);
    } finally {
      await s.close();
    }
  });
});

describe('damage', () => {
  it('a flipped byte is caught with UGCFS_ERR_CHECKSUM, never served, and scrub reports it', async () => {
    const dir = freshDir();
    const keys = range(100, 10);
    await fill(dir, keys);
    let s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    const victim = await s.ctx.index.get(1, 104n, false);
    const digestBefore = (await s.scrub(1)).digest;
    await s.close();

    const path = join(dir, 'blocks', '1.0.blk');
    const fd = openSync(path, 'r+');
    const one = Buffer.alloc(1);
    const at = victim!.offset + 32 + 'image/jpeg'.length + 'seller-1'.length + 5; // inside the data
    readSync(fd, one, 0, 1, at);
    one[0]! ^= 0x40;
    writeSync(fd, one, 0, 1, at);
    closeSync(fd);

    const { metrics, registry } = createMetrics('dataserver');
    s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE, metrics });
    try {
      await expect(s.read(1, 104n, 104)).rejects.toMatchObject({ code: 'UGCFS_ERR_CHECKSUM', status: 500 });
      expect((await registry.getSingleMetric('ugcfs_checksum_failures_total')!.get()).values[0]!.value).toBe(1);
      await expectContents(s, keys.filter((k) => k !== 104n), []);
      const scrub = await s.scrub(1);
      expect(scrub.bad).toEqual([{ key: '104', offset: victim!.offset, reason: 'crc' }]);
      expect(scrub.records).toBe(10);
      expect(scrub.digest).not.toBe(digestBefore);
    } finally {
      await s.close();
    }
  });

  it('scrub resynchronises after a record whose header is destroyed and checks the rest', async () => {
    const dir = freshDir();
    const keys = range(1, 6);
    await fill(dir, keys);
    let s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    const victim = (await s.ctx.index.get(1, 3n, false))!;
    await s.close();
    const fd = openSync(join(dir, 'blocks', '1.0.blk'), 'r+');
    writeSync(fd, Buffer.from('garbage!'), 0, 8, victim.offset);
    closeSync(fd);
    s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      const r = await s.scrub(1);
      expect(r.bad).toEqual([{ key: '3', offset: victim.offset, reason: 'magic' }]);
      expect(r.records).toBe(6);
      await expect(s.read(1, 3n, 3)).rejects.toMatchObject({ code: 'UGCFS_ERR_CORRUPT' });
      await expectContents(s, keys.filter((k) => k !== 3n), []);
    } finally {
      await s.close();
    }
  });

  it('a torn record past the watermark is cut off on open', async () => {
    const dir = freshDir();
    await fill(dir, range(1, 5));
    const path = join(dir, 'blocks', '1.0.blk');
    const size = statSync(path).size;
    const torn = encodeNeedle(meta(99n), data(99n)).subarray(0, 1000);
    appendFileSync(path, torn);
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      expect(s.recovered).toMatchObject({ records: 0, cutBytes: 1000 });
      expect(statSync(path).size).toBe(size);
      await expectContents(s, range(1, 5), [99n]);
      // The block still takes writes after the cut, at the right place.
      await s.put(1, meta(6n), data(6n));
      await expectContents(s, range(1, 6), []);
    } finally {
      await s.close();
    }
  });

  it('whole records past the watermark are re-indexed, also after a corrupt one (the watermark may trail acknowledged data)', async () => {
    const dir = freshDir();
    await fill(dir, range(1, 3));
    const path = join(dir, 'blocks', '1.0.blk');
    const good = encodeNeedle(meta(50n), data(50n));
    const bad = encodeNeedle(meta(51n), data(51n));
    bad[bad.length - 12]! ^= 1;
    const after = encodeNeedle(meta(52n), data(52n));
    appendFileSync(path, Buffer.concat([good, bad, after]));
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      expect(s.recovered).toMatchObject({ records: 2, cutBytes: 0 });
      await expectContents(s, [...range(1, 3), 50n, 52n], [51n]);
      expect(s.block(1).report()).toMatchObject({ liveCount: 5 });
      // the damaged record's bytes stay in the file, counted as dead
      expect(s.block(1).report().deletedBytes).toBeGreaterThanOrEqual(bad.length);
    } finally {
      await s.close();
    }
  });

  it('records written but not yet indexed (killed between write and index) are recovered whole', async () => {
    const dir = freshDir();
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin/run-ts.mjs'), join(ROOT, 'test/dataserver/append-loop.ts'), dir, '1', String(BLOCK_SIZE)], {
        cwd: ROOT,
        env: { ...process.env, UGCFS_TEST_CRASH_AT: 'append-written' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let text = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
      child.on('exit', (_c, signal) => (signal === 'SIGKILL' ? resolve(text) : reject(new Error(`no crash: ${text}`))));
    });
    expect(out).not.toMatch(/^P /m);
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      expect(s.recovered.records).toBeGreaterThan(0);
      let n = 0;
      for await (const { key, entry } of s.ctx.index.entries(1)) {
        const rec = await s.read(1, key, entry.cookie);
        expect(Buffer.compare(rec.data, recordData(key))).toBe(0);
        n++;
      }
      expect(n).toBe(s.recovered.records);
      expect(s.block(1).report()).toMatchObject({ liveCount: n });
    } finally {
      await s.close();
    }
  });

  it('without its index a block is rebuilt from the file alone, tombstones applied', async () => {
    const dir = freshDir();
    await fill(dir, range(1, 30), [3n, 9n, 27n]);
    rmSync(join(dir, 'index'), { recursive: true });
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      await expectContents(s, range(1, 30).filter((k) => ![3n, 9n, 27n].includes(k)), [3n, 9n, 27n]);
      expect(s.block(1).report()).toMatchObject({ liveCount: 27 });
    } finally {
      await s.close();
    }
  });
});

describe('writes', () => {
  it('seals a block when the next record does not fit, and refuses a body larger than a block', async () => {
    const dir = freshDir();
    const s = await BlockStore.open({ dir, blockSize: 16 * 1024 });
    try {
      await s.createBlock(1);
      await expect(s.put(1, meta(1n), Buffer.alloc(17 * 1024))).rejects.toMatchObject({ code: 'UGCFS_ERR_TOO_LARGE' });
      let stored = 0;
      for (let k = 1n; ; k++) {
        const r = await s.put(1, meta(k), Buffer.alloc(3000, 1)).catch((e: { code: string }) => e);
        if ('code' in r) {
          expect(r.code).toBe('UGCFS_ERR_BLOCK_READONLY');
          break;
        }
        stored++;
      }
      expect(stored).toBe(5);
      expect(s.block(1).report()).toMatchObject({ sealed: true, readonly: true, liveCount: 5 });
      // Deletes still work on a sealed block.
      await s.delete(1, 2n, 2);
      await expect(s.read(1, 2n, 2)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    } finally {
      await s.close();
    }
  });

  it('concurrent appends share fsyncs (group commit)', async () => {
    const dir = freshDir();
    const { metrics, registry } = createMetrics('dataserver');
    const s = await BlockStore.open({ dir, blockSize: 64 << 20, metrics });
    try {
      await s.createBlock(1);
      await Promise.all(range(1, 200).map((k) => s.put(1, meta(k), data(k))));
      const fsyncs = (await registry.getSingleMetric('ugcfs_fsyncs_total')!.get()).values[0]!.value;
      expect(fsyncs).toBeGreaterThan(0);
      expect(fsyncs).toBeLessThan(200);
      await expectContents(s, range(1, 200), []);
    } finally {
      await s.close();
    }
  });

  it('detects duplicates whatever order keys arrive in, before and after reopen', async () => {
    const dir = freshDir();
    let s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    await s.createBlock(1);
    await Promise.all([s.put(1, meta(10n), data(10n)), s.put(1, meta(30n), data(30n))]);
    await s.put(1, meta(20n), data(20n));
    for (const k of [10n, 20n, 30n]) await expect(s.put(1, meta(k), Buffer.from('x'))).rejects.toMatchObject({ code: 'UGCFS_ERR_DUPLICATE_KEY' });
    await s.close();
    s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      await Promise.all([10n, 20n, 30n].map((k) => expect(s.put(1, meta(k), Buffer.from('x'))).rejects.toMatchObject({ code: 'UGCFS_ERR_DUPLICATE_KEY' })));
      await s.put(1, meta(25n), data(25n));
      await expectContents(s, [10n, 20n, 25n, 30n], []);
    } finally {
      await s.close();
    }
  });

  it('refuses a second record with the same key, but accepts the same record again', async () => {
    const dir = freshDir();
    await fill(dir, [5n]);
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      await expect(s.put(1, meta(5n), Buffer.from('other'))).rejects.toMatchObject({ code: 'UGCFS_ERR_DUPLICATE_KEY' });
      const again = await s.put(1, meta(5n), data(5n));
      expect(again.existed).toBe(true);
      expect(s.block(1).report().liveCount).toBe(1);
    } finally {
      await s.close();
    }
  });
});

describe('compaction', () => {
  it('drops deleted records, keeps reads going, and deletes during the copy stay deleted', async () => {
    const dir = freshDir();
    const keys = range(1, 300);
    const deleted = keys.filter((k) => k % 3n === 0n);
    await fill(dir, keys, deleted);
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    const during = [1n, 2n, 4n, 5n, 7n];
    const live = keys.filter((k) => !deleted.includes(k) && !during.includes(k));
    try {
      const before = s.block(1).report();
      const compaction = s.compact(1);
      // Reads and deletes while it runs.
      const reads = Promise.all(live.slice(0, 100).map(async (k) => Buffer.compare((await s.read(1, k, Number(k))).data, data(k))));
      await Promise.all(during.map((k) => s.delete(1, k, Number(k))));
      const r = await compaction;
      expect(await reads).toEqual(live.slice(0, 100).map(() => 0));
      expect(r.beforeBytes).toBe(before.size);
      expect(r.afterBytes).toBeLessThan(before.size);
      expect(blockFiles(dir)).toEqual(['1.1.blk']);
      await expectContents(s, live, [...deleted, ...during]);
      expect(s.block(1).report()).toMatchObject({ gen: 1, liveCount: live.length });
      expect((await s.scrub(1)).bad).toEqual([]);
    } finally {
      await s.close();
    }
    // Rebuilding from the new file alone must not resurrect anything deleted during the copy.
    rmSync(join(dir, 'index'), { recursive: true });
    const again = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      await expectContents(again, live, [...deleted, ...during]);
    } finally {
      await again.close();
    }
  });

  const STEPS: Array<[string, string]> = [
    ['compact-copied', '1.0.blk'],
    ['compact-tombstoned', '1.0.blk'],
    ['compact-switched', '1.1.blk'],
    ['compact-unlinked', '1.1.blk'],
  ];
  it.each(STEPS)('a SIGKILL at %s loses nothing and resurrects nothing', async (step, survivor) => {
    const dir = freshDir();
    const keys = range(1, 150);
    const deleted = keys.filter((k) => k % 4n === 0n);
    await fill(dir, keys, deleted);
    const racing = [1n, 2n, 3n];
    const acked = await new Promise<bigint[]>((resolve, reject) => {
      const child = spawn(process.execPath, [join(ROOT, 'bin/run-ts.mjs'), join(ROOT, 'test/dataserver/compact-step.ts'), dir, ...racing.map(String)], {
        cwd: ROOT,
        env: { ...process.env, UGCFS_TEST_CRASH_AT: step },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
      child.on('exit', (_code, signal) => {
        if (signal !== 'SIGKILL' || out.includes('DONE')) return reject(new Error(`did not crash at ${step}: ${out} ${err}`));
        resolve([...out.matchAll(/^D (\d+)$/gm)].map((m) => BigInt(m[1]!)));
      });
    });
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      expect(blockFiles(dir)).toEqual([survivor]);
      const gone = [...deleted, ...acked];
      const unsure = racing.filter((k) => !acked.includes(k));
      await expectContents(s, keys.filter((k) => !gone.includes(k) && !unsure.includes(k)), gone);
      for (const k of unsure) {
        const n = await s.read(1, k, Number(k)).catch(() => undefined);
        if (n) expect(Buffer.compare(n.data, data(k))).toBe(0);
      }
      let indexed = 0;
      for await (const _ of s.ctx.index.entries(1)) indexed++;
      expect(s.block(1).report().liveCount).toBe(indexed);
      expect((await s.scrub(1)).bad).toEqual([]);
      // And the block can be compacted to the end afterwards.
      await s.compact(1);
      await expectContents(s, keys.filter((k) => !gone.includes(k) && !unsure.includes(k)), gone);
    } finally {
      await s.close();
    }
  });
});

describe('races', () => {
  it('a delete issued while the same key is still being written waits for it, then removes it', async () => {
    const dir = freshDir();
    const s = await BlockStore.open({ dir, blockSize: BLOCK_SIZE });
    try {
      await s.createBlock(1);
      const put = s.put(1, meta(9n), data(9n));
      const del = s.delete(1, 9n, 9);
      await put;
      await del;
      await expectContents(s, [], [9n]);
    } finally {
      await s.close();
    }
  });
});
