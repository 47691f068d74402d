// Fills a data server's storage quickly, straight through the storage engine (BlockStore:
// the same appends, group commit and LevelDB index a data server uses, minus HTTP), and
// times reopening it. Used by the scale section; prints one JSON result line per step.
//   node bin/run-ts.mjs bench/scale-generate.ts fill   --dir D --block B --count N [--size 1024] [--block-size BYTES] [--sample K] [--out FIDS.json] [--base-key N]
//   node bin/run-ts.mjs bench/scale-generate.ts reopen --dir D [--block-size BYTES]
import { writeFileSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { BlockStore } from '../dataserver/block-store.ts';
import { encodeFid, newCookie } from '../src/wire/file-id.ts';
import { parseFlags, scriptInfo } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const flags = parseFlags({ ...scriptInfo(import.meta.url), commands: ['fill', 'reopen'] }, {
  dir: opt.string('', "the data server's storage directory", { required: true }),
  blockSize: opt.int(4 * 2 ** 30, 'block size of the store (a number, or with a unit: 4G)', { min: 1 }),
  block: opt.int(1, 'fill: the block to append to (created when missing)', { min: 1 }),
  count: opt.int(10_000, 'fill: records appended', { min: 1 }),
  size: opt.int(1024, 'fill: bytes per record', { min: 1 }),
  sample: opt.int(10_000, 'fill: fids kept in the uniform sample written to --out', { min: 0 }),
  out: opt.string('', 'fill: where the sample of fids goes (a JSON array)'),
  // keys are BigInts built from it: below 2^53 they are exact
  baseKey: opt.int(2 ** 40, 'fill: the first record key', { min: 0, max: Number.MAX_SAFE_INTEGER }),
});
const { command: mode, dir, blockSize } = flags;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

if (mode === 'reopen') {
  const t0 = process.hrtime.bigint();
  const store = await BlockStore.open({ dir, fsync: false, blockSize });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const records = store.reports().reduce((n, b) => n + b.liveCount, 0);
  await store.close();
  out({ metric: 'reopen', value: ms, unit: 'ms', records });
} else {
  const { block, count, size: fileSize, sample: sampleSize } = flags;
  // By default keys far above anything the name server's sequence hands out in a bench run.
  const baseKey = BigInt(flags.baseKey);
  // Buffered appends, so the block files are in the page cache as the scale section says:
  // it measures what the index costs at each size, not the disk.
  const store = await BlockStore.open({ dir, fsync: false, blockSize, directWrites: false });
  if (!store.has(block)) await store.createBlock(block);
  const data = randomBytes(fileSize);
  const sample: string[] = [];
  let next = 0;
  const t0 = process.hrtime.bigint();
  // Many appends in flight so group commit batches them, as it does under real load.
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      const key = baseKey + BigInt(i);
      const cookie = newCookie();
      await store.put(block, { key, cookie, uploadTime: Date.now(), mime: 'application/octet-stream', owner: 'bench' }, data);
      const fid = encodeFid({ block, key, cookie });
      // reservoir sample: a uniform choice over the whole key range
      if (sample.length < sampleSize) sample.push(fid);
      else {
        const j = randomInt(0, i + 1);
        if (j < sampleSize) sample[j] = fid;
      }
    }
  };
  await Promise.all(Array.from({ length: 512 }, worker));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await store.close();
  if (flags.out) writeFileSync(flags.out, JSON.stringify(sample));
  out({ metric: 'fill', value: count / secs, unit: 'records/s', records: count, seconds: secs, fileSize });
}
