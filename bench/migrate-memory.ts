// Memory of `ugcfs migrate` against the size of the migration: peak RSS (the kernel's max
// resident set, from /usr/bin/time) of the real command
//   1. `--dry-run` over a tree of N tiny PNGs in nested folders (walk, lookup, upload check
//      for every file, nothing stored),
//   2. `--dry-run` over a tree of N text files (every one skipped, so listed in the report),
//   3. opening a state that remembers N finished files: first an old-format JSON-lines state
//      file (converted on first use), then the converted state, over an empty tree.
// Memory that grows with N shows up as RSS growing with N; run it at two sizes to see the
// slope. A scenario whose N is 0 is left out. Prints one JSON result line per figure
// (docs/BENCHMARKS.md convention).
//   node bin/run-ts.mjs bench/migrate-memory.ts [--quick] [--files N] [--skip-files N] [--state-files N]
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { startCluster } from './lib/cluster.ts';
import { UGCFS_BIN, runCommand, killAll } from './lib/spawn.ts';
import { stateFileName } from '../cli/migrate/migrate-state.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { files, skipFiles, stateFiles } = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'smaller trees and state, for a smoke check'),
  files: opt.int(200_000, 'PNGs in the dry-run tree; 0 leaves the scenario out', { min: 0 }),
  skipFiles: opt.int(200_000, 'text files in the every-file-skipped tree; 0 leaves it out', { min: 0 }),
  stateFiles: opt.int(1_000_000, 'done files in the state opened; 0 leaves it out', { min: 0 }),
}, { quick: { files: 10_000, skipFiles: 10_000, stateFiles: 100_000 } });
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (m: string) => process.stderr.write(`migrate-memory: ${m}\n`);
const TIME = '/usr/bin/time';

/** Runs the command under /usr/bin/time and returns its peak RSS in MB with its output. */
async function peakRss(args: string[], env: Record<string, string>, work: string): Promise<{ mb: number; seconds: number; stdout: string; stderr: string; code: number | null }> {
  const rssFile = join(work, 'rss.txt');
  const t0 = process.hrtime.bigint();
  const r = await runCommand(TIME, ['-f', '%M', '-o', rssFile, process.execPath, UGCFS_BIN, ...args], { env, timeoutMs: 60 * 60_000 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
  return { mb: +(kb / 1024).toFixed(1), seconds: +seconds.toFixed(1), ...r };
}

/** 100 files per folder, 100 folders per parent: the shape of a dated upload tree. */
function relName(i: number, ext = 'png'): string {
  return `${String(Math.floor(i / 10_000)).padStart(3, '0')}/${String(Math.floor(i / 100) % 100).padStart(2, '0')}/img-${i}.${ext}`;
}

function makeTree(dir: string, n: number, ext: string, bytes: Buffer): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const rel = relName(i, ext);
    if (i % 100 === 0) mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), bytes);
  }
}

if (!existsSync(TIME)) {
  log(`${TIME} not found (Debian package "time"); cannot read peak RSS`);
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-migrate-mem-'));
process.on('SIGINT', () => { killAll(); rmSync(work, { recursive: true, force: true }); process.exit(130); });
try {
  const png = await sharp({ create: { width: 1, height: 1, channels: 3, background: '#808080' } }).png().toBuffer();
  const tree = join(work, 'tree');
  const texts = join(work, 'texts');
  makeTree(tree, files, 'png', png);
  makeTree(texts, skipFiles, 'txt', Buffer.from('not an image\n'));
  const empty = join(work, 'empty');
  mkdirSync(empty);
  log(`trees: ${files} PNGs of ${png.length} bytes, ${skipFiles} text files; starting a name server and a data server`);
  const cluster = await startCluster({ dir: join(work, 'cluster'), dataservers: 1, replicas: 1 });
  try {
    const env = { ...cluster.env, UGCFS_NAMESERVER: cluster.nameserver.url };
    for (const [n, dir, metric] of [
      [files, tree, 'migrate --dry-run peak RSS'],
      [skipFiles, texts, 'migrate --dry-run peak RSS, every file skipped (not an image)'],
    ] as const) {
      if (n === 0) continue;
      const dry = await peakRss(['migrate', dir, '--prefix', '/uploads', '--dry-run', '--json'], env, work);
      if (dry.code !== 0) throw new Error(`dry run exited ${dry.code}: ${dry.stderr.slice(-500)}`);
      const report = JSON.parse(dry.stdout) as { total: number; copied: number; skips: unknown[] };
      const handled = dir === tree ? report.copied : report.skips.length;
      if (report.total !== n || handled !== n) throw new Error(`dry run saw ${report.total} files, handled ${handled}, of ${n}`);
      out({ metric, value: dry.mb, unit: 'MB', files: n, seconds: dry.seconds });
      log(`${metric}: ${dry.mb} MB in ${dry.seconds} s`);
    }

    // An old-format state file as the JSON-lines journal wrote it: one "done" line per file.
    const stateDir = join(work, 'state');
    mkdirSync(stateDir);
    const nsUrl = env.UGCFS_NAMESERVER;
    const file = stateFileName(stateDir, ['dir', empty, '/uploads', nsUrl]);
    const ws = createWriteStream(file);
    for (let i = 0; i < stateFiles; i++) {
      const sha = (i.toString(16) + 'f'.repeat(64)).slice(0, 64);
      if (!ws.write(JSON.stringify({ t: 'done', p: `/uploads/${relName(i)}`, fid: `F${i}`.padEnd(21, 'x'), sha, size: png.length }) + '\n')) await once(ws, 'drain');
    }
    ws.end();
    await once(ws, 'finish');
    const args = ['migrate', empty, '--prefix', '/uploads', '--state', stateDir, '--nameserver', nsUrl, '--json'];
    for (const pass of stateFiles > 0 ? (['old-format state', 'converted state'] as const) : []) {
      const r = await peakRss(args, env, work);
      if (r.code !== 0) throw new Error(`${pass} run exited ${r.code}: ${r.stderr.slice(-500)}`);
      out({ metric: `migrate peak RSS opening a ${pass} of N done files`, value: r.mb, unit: 'MB', stateFiles, seconds: r.seconds });
      log(`${pass}: ${r.mb} MB in ${r.seconds} s`);
    }
  } finally {
    await cluster.stop();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
