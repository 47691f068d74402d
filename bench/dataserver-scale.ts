// Scale of one data server's storage engine: fills a store with N small records straight
// through BlockStore (the same appends, group commit and LevelDB index as a data server,
// minus HTTP), then measures index bytes per file on disk and the time to reopen the store
// in a fresh process (open LevelDB, reconcile every block; never a scan of whole blocks).
// Also the reopen after a SIGKILL mid-write, which must only scan the unindexed tail.
//   node bin/run-ts.mjs bench/dataserver-scale.ts [--quick] [--records 1000000] [--size 100]
//   node bin/run-ts.mjs bench/dataserver-scale.ts --reopen DIR      (internal: one timed open)
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlockStore } from '../dataserver/block-store.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'fewer records, for a smoke check'),
  records: opt.int(1_000_000, 'records filled through the engine', { min: 1 }),
  size: opt.int(100, 'bytes per record', { min: 1 }),
  reopen: opt.string('', 'internal: one timed open of the store in this directory'),
}, { quick: { records: 200_000 } });
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const BLOCK_SIZE = 256 * 1024 * 1024;
const self = fileURLToPath(import.meta.url);
const RUN_TS = join(fileURLToPath(new URL('..', import.meta.url)), 'bin', 'run-ts.mjs');

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    n += e.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

async function fill(dir: string, from: number, count: number, size: number, inFlight = 256): Promise<number> {
  const store = await BlockStore.open({ dir, fsync: false, blockSize: BLOCK_SIZE });
  const data = Buffer.alloc(size, 0x5a);
  let block = Math.max(0, ...store.reports().map((r) => r.id));
  if (block === 0 || store.block(block).writeRefusal()) await store.createBlock(++block);
  let next = from;
  const end = from + count;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      for (;;) {
        const i = next++;
        if (i >= end) return;
        const key = BigInt(i);
        for (;;) {
          const b = block;
          try {
            await store.put(b, { key, cookie: i >>> 0, uploadTime: 1_700_000_000_000, mime: 'image/jpeg', owner: '' }, data);
            break;
          } catch (err) {
            if ((err as { code?: string }).code !== 'UGCFS_ERR_BLOCK_READONLY') throw err;
            if (block === b) {
              block = b + 1;
              await store.createBlock(block);
            }
          }
        }
      }
    }),
  );
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await store.close();
  return count / secs;
}

/** Opens the store in a fresh process so nothing is warm in this one. */
function timedReopen(dir: string): Promise<{ ms: number; records: number; recovered: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_TS, self, '--reopen', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(text) as { ms: number; records: number; recovered: number }) : reject(new Error(`reopen exited ${code}`))));
  });
}

if (flags.reopen) {
  const dir = flags.reopen;
  const t0 = process.hrtime.bigint();
  const store = await BlockStore.open({ dir, fsync: false, blockSize: BLOCK_SIZE });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const records = store.reports().reduce((n, r) => n + r.liveCount, 0);
  const recovered = store.recovered.records;
  await store.close();
  process.stdout.write(JSON.stringify({ ms, records, recovered }));
} else {
  const { records, size } = flags;
  const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-dsscale-'));
  const dir = join(work, 'store');
  try {
    const rate = await fill(dir, 1, records, size);
    out({ metric: 'storage engine fill (fsync off)', value: Math.round(rate), unit: 'records/s', records, size });

    // Settle LevelDB (its write-ahead log becomes a table on reopen) and compact it fully, so
    // the figure is the index's steady-state footprint rather than an unflushed log.
    const settle = await BlockStore.open({ dir, fsync: false, blockSize: BLOCK_SIZE });
    const rawBytes = dirBytes(join(dir, 'index'));
    await settle.ctx.index.compactAll();
    await settle.close();
    const indexBytes = dirBytes(join(dir, 'index'));
    out({ metric: 'index bytes per file', value: Math.round((indexBytes / records) * 10) / 10, unit: 'B', records, indexBytes, beforeCompactionBytesPerFile: Math.round((rawBytes / records) * 10) / 10, goal: 64 });

    const cold = await timedReopen(dir);
    out({ metric: `reopen ${records.toLocaleString('en-US')} records`, value: Math.round(cold.ms), unit: 'ms', records: cold.records, goal: records >= 1_000_000 ? 3000 : undefined });

    // A writer SIGKILLed mid-stream leaves records past the watermark; reopening scans only those.
    await new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [RUN_TS, join(fileURLToPath(new URL('..', import.meta.url)), 'test', 'dataserver', 'append-loop.ts'), dir, '999', String(BLOCK_SIZE)], { stdio: ['ignore', 'pipe', 'ignore'], env: { ...process.env, UGCFS_TEST_CRASH_AT: '' } });
      let acks = 0;
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        acks += d.split('\n').filter((l) => l.startsWith('P ')).length;
        if (acks >= 2000) child.kill('SIGKILL');
      });
      child.on('exit', (_c, signal) => (signal === 'SIGKILL' ? resolve() : reject(new Error('writer ended on its own'))));
    });
    const afterKill = await timedReopen(dir);
    out({ metric: `reopen ${afterKill.records.toLocaleString('en-US')} records after SIGKILL`, value: Math.round(afterKill.ms), unit: 'ms', recoveredRecords: afterKill.recovered });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
