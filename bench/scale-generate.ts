// Fills a data server's storage quickly, straight through the storage engine (BlockStore:
// the same appends, group commit and LevelDB index a data server uses, minus HTTP), and
// times reopening it. Used by the scale section; prints one JSON result line per step.
//   node bin/run-ts.mjs bench/scale-generate.ts fill   --dir D --block B --count N [--size 1024] [--block-size BYTES] [--sample K] [--out FIDS.json]
//   node bin/run-ts.mjs bench/scale-generate.ts reopen --dir D [--block-size BYTES]
import { writeFileSync } from 'node:fs';
import { randomBytes, randomInt } from 'node:crypto';
import { BlockStore } from '../dataserver/block-store.ts';
import { encodeFid, newCookie } from '../src/file-id.ts';
import { parseArgv, parseSize } from '../src/config.ts';

const { flags, positionals } = parseArgv(process.argv.slice(2));
const mode = positionals[0];
const dir = String(flags.get('--dir') ?? '');
const size = (s: string | true | undefined, d: number) => (typeof s === 'string' ? (Number.isNaN(Number(s)) ? parseSize(s) : Number(s)) : d);
const blockSize = size(flags.get('--block-size'), 4 * 2 ** 30);
if (!dir || (mode !== 'fill' && mode !== 'reopen')) {
  process.stderr.write('usage: scale-generate.ts fill|reopen --dir D [...]\n');
  process.exit(2);
}
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

if (mode === 'reopen') {
  const t0 = process.hrtime.bigint();
  const store = await BlockStore.open({ dir, fsync: false, blockSize });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const records = store.reports().reduce((n, b) => n + b.liveCount, 0);
  await store.close();
  out({ metric: 'reopen', value: ms, unit: 'ms', records });
} else {
  const block = Number(flags.get('--block') ?? 1);
  const count = Number(flags.get('--count') ?? 10_000);
  const fileSize = size(flags.get('--size'), 1024);
  const sampleSize = Number(flags.get('--sample') ?? 10_000);
  // Keys far above anything the name server's sequence hands out in a bench run.
  const baseKey = BigInt(flags.get('--base-key') === undefined ? 2 ** 40 : String(flags.get('--base-key')));
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
  if (flags.get('--out')) writeFileSync(String(flags.get('--out')), JSON.stringify(sample));
  out({ metric: 'fill', value: count / secs, unit: 'records/s', records: count, seconds: secs, fileSize });
}
