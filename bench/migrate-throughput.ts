// Migration throughput: `ugcfs migrate DIR --prefix` over a local tree of 10,000 JPEGs of
// 5-200 KB into a real cluster (name server + 2 data servers, 2 replicas, fsync on, as in
// production), timed wall-clock around the real command (walk, upload check and metadata
// strip, replicated write, read-back verify, mapping). A second run over the same tree
// (everything unchanged) is timed too: that is the cost of re-running to be sure.
// Prints one JSON result line per figure.
//   node bin/run-ts.mjs bench/migrate-throughput.ts [--quick] [--files N] [--concurrency N]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { startCluster } from './lib/cluster.ts';
import { UGCFS_BIN, runCommand, killAll } from './lib/spawn.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { files, concurrency } = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'a smaller tree, for a smoke check'),
  files: opt.int(10_000, 'JPEGs in the migrated tree', { min: 1 }),
  concurrency: opt.int(8, "migrate's --concurrency", { min: 1 }),
}, { quick: { files: 1000 } });
const MIN = 5 * 1024;
const MAX = 200 * 1024;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (m: string) => process.stderr.write(`migrate-throughput: ${m}\n`);

/** Noise JPEGs spread over 5-200 KB; noise does not compress, so size follows pixel count. */
async function makePool(n: number): Promise<Buffer[]> {
  const pool: Buffer[] = [];
  for (let i = 0; pool.length < n && i < n * 4; i++) {
    const target = MIN + ((MAX - MIN) * (pool.length + 0.5)) / n;
    // About half a byte per pixel for gaussian noise at quality 80.
    const side = Math.max(16, Math.round(Math.sqrt(target / 0.52)));
    const img = await sharp({ create: { width: side, height: side, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).jpeg({ quality: 80 }).toBuffer();
    if (img.length >= MIN && img.length <= MAX) pool.push(img);
  }
  if (pool.length === 0) throw new Error('could not make test images in the 5-200 KB range');
  return pool;
}

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-migrate-'));
process.on('SIGINT', () => { killAll(); rmSync(work, { recursive: true, force: true }); process.exit(130); });
try {
  const tree = join(work, 'tree');
  const pool = await makePool(64);
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const dir = join(tree, String(2010 + (i % 10)), String(i % 97).padStart(2, '0'));
    mkdirSync(dir, { recursive: true });
    const img = pool[i % pool.length]!;
    writeFileSync(join(dir, `item ${i}.jpg`), img);
    bytes += img.length;
  }
  log(`tree: ${files} files, ${(bytes / 1e6).toFixed(1)} MB; starting cluster`);
  const cluster = await startCluster({ dir: join(work, 'cluster'), dataservers: 2, replicas: 2 });
  try {
    const args = [UGCFS_BIN, 'migrate', tree, '--prefix', '/uploads', '--concurrency', String(concurrency), '--state', join(work, 'state'), '--json'];
    const env = { ...process.env, ...cluster.env, UGCFS_NAMESERVER: cluster.nameserver.url };
    for (const pass of ['first', 'rerun'] as const) {
      const t0 = process.hrtime.bigint();
      const r = await runCommand(process.execPath, args, { env, timeoutMs: 30 * 60_000 });
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.code !== 0) {
        const failures = (() => { try { return (JSON.parse(r.stdout) as { failures: unknown[] }).failures.slice(0, 3); } catch { return r.stderr.slice(-500); } })();
        throw new Error(`migrate (${pass}) exited ${r.code}: ${JSON.stringify(failures)}`);
      }
      const report = JSON.parse(r.stdout) as { copied: number; unchanged: number; failed: number; bytes: number };
      const expected = pass === 'first' ? report.copied : report.unchanged;
      if (expected !== files) throw new Error(`migrate (${pass}) handled ${expected} of ${files} files`);
      const common = { files, sourceMB: +(bytes / 1e6).toFixed(1), storedMB: +(report.bytes / 1e6).toFixed(1), concurrency, replicas: 2, seconds: +secs.toFixed(2) };
      if (pass === 'first') {
        out({ metric: 'migrate files/s', value: +(files / secs).toFixed(1), unit: 'files/s', ...common });
        out({ metric: 'migrate MB/s (source bytes)', value: +(bytes / 1e6 / secs).toFixed(2), unit: 'MB/s', ...common });
      } else {
        out({ metric: 'migrate rerun, all unchanged, files/s', value: +(files / secs).toFixed(1), unit: 'files/s', ...common });
      }
      log(`${pass}: ${secs.toFixed(1)} s`);
    }
  } finally {
    await cluster.stop();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
