// Scale: how cost grows with the number of files on a data server. For 10k, 100k and 1M
// files (1 KB each), a generator writes straight through the storage engine into a block
// the name server allocated; then: index bytes per file on disk, store reopen time, data
// server start-up time, name-server and data-server memory, and read latency/throughput
// over a uniform random sample of the files, with the index cache on (default) and off
// (every read is a LevelDB lookup: the part that could grow with the file count).
import { join } from 'node:path';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { Section, BenchContext } from '../context.ts';
import type { Goal } from '../results.ts';
import { runWrk, checkWrk, type WrkResult } from '../wrk.ts';
import { median } from '../stats.ts';
import { table, num, micros, bytes, ratio } from '../markdown.ts';
import { chartSvg, writeChartPng } from '../chart.ts';
import { rolesAvailable, startCluster, clientWriter, SECRET } from '../cluster.ts';
import { startUgcfs, runCommand, RUN_TS, ROOT, type Child } from '../spawn.ts';
import { decodeFid } from '../../../src/file-id.ts';
import { DS_ROUTES } from '../../../src/protocol.ts';

const FILE_SIZE = 1024;
const BLOCK_SIZE = String(4 * 2 ** 30);
const SAMPLE = 20_000;

function du(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    total += e.isDirectory() ? du(p) : statSync(p).size;
  }
  return total;
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

async function generator(args: string[]): Promise<Record<string, number>> {
  const r = await runCommand(process.execPath, [RUN_TS, join(ROOT, 'bench', 'scale-generate.ts'), ...args], { timeoutMs: 15 * 60_000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  if (r.code !== 0 || !line) throw new Error(`scale-generate ${args[0]} failed (${r.code}): ${r.stderr.slice(-400)}`);
  return JSON.parse(line) as Record<string, number>;
}

interface Point {
  files: number;
  fillPerS: number;
  indexBytesPerFile: number;
  blockBytesPerFile: number;
  reopenMs: number;
  startMs: number;
  nsRss: number;
  dsRss: number;
  cached: { rps: number; p50: number; p99: number };
  uncached: { rps: number; p50: number; p99: number };
}

export const section: Section = {
  id: 'scale',
  title: 'Scale: 10k, 100k and 1M files on one data server',
  async run(ctx: BenchContext) {
    const roles = rolesAvailable();
    if (!roles.nameserver || !roles.dataserver || !ctx.tools.wrk) {
      return { markdown: 'Not measured: needs the name server, the data server and wrk.', goals: [], commands: [], data: {} };
    }
    const counts = ctx.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
    const points: Point[] = [];
    const commands: string[] = [`wrk -t 2 -c 32 -d ${ctx.durationS}s --timeout 10s -s ROUND_ROBIN.lua URL   (the Lua script walks the file list, one JSON summary line; bench/lib/wrk.ts)`];
    for (const count of counts) {
      ctx.log(`  scale: ${count} files`);
      const dir = join(ctx.work, `n${count}`);
      const dsDir = join(dir, 'ds0');
      const dsArgs = (cache: number) => ['dataserver', '--data', dsDir, '--nameserver', cluster.nameserver.url, '--port', '0', '--block-size', BLOCK_SIZE, '--index-cache-entries', String(cache)];
      // A real name server allocates the block (so the data server's reports match what it
      // knows); the data server is then stopped while the generator fills the block.
      const cluster = await startCluster({ dir, dataservers: 1, replicas: 1, dataserverArgs: ['--block-size', BLOCK_SIZE] });
      let ds: Child | undefined;
      try {
        const w = await clientWriter(cluster.nameserver.url);
        const block = decodeFid(await w.put(Buffer.alloc(FILE_SIZE, 1), 'application/octet-stream', 1)).block;
        await w.close?.();
        await cluster.dataservers[0]!.stop();
        const fidsFile = join(dir, 'fids.json');
        const genArgs = ['fill', '--dir', dsDir, '--block', String(block), '--count', String(count), '--size', String(FILE_SIZE), '--block-size', BLOCK_SIZE, '--sample', String(SAMPLE), '--out', fidsFile];
        if (count === counts[0]) commands.push(`node bin/run-ts.mjs bench/scale-generate.ts ${genArgs.join(' ').replace(dsDir, 'DSDIR').replace(fidsFile, 'FIDS')}`);
        const fill = await generator(genArgs);
        const indexBytes = du(join(dsDir, 'index'));
        const blockBytes = du(join(dsDir, 'blocks'));
        const reopens: number[] = [];
        for (let i = 0; i < 3; i++) reopens.push((await generator(['reopen', '--dir', dsDir, '--block-size', BLOCK_SIZE])).value!);
        const fids = JSON.parse(readFileSync(fidsFile, 'utf8')) as string[];
        const paths = fids.map((f) => DS_ROUTES.needle.replace(':fid', f));
        const modes: Record<'cached' | 'uncached', WrkResult[]> = { cached: [], uncached: [] };
        const starts: number[] = [];
        let dsRss = Number.NaN;
        for (const mode of ['cached', 'uncached'] as const) {
          const t0 = Date.now();
          ds = await startUgcfs(dsArgs(mode === 'cached' ? 100_000 : 0), { env: cluster.env });
          starts.push(Date.now() - t0);
          if (count === counts[0]) commands.push(`ugcfs ${dsArgs(mode === 'cached' ? 100_000 : 0).join(' ').replace(dsDir, 'DSDIR')}`);
          const go = (d: number) => runWrk({ wrk: ctx.tools.wrk!, url: ds!.url, paths, headers: { 'x-ugcfs-secret': SECRET }, durationS: d });
          checkWrk(await go(1), `scale ${count} ${mode} warm-up`);
          for (let r = 0; r < ctx.runs; r++) modes[mode].push(checkWrk(await go(ctx.durationS), `scale ${count} ${mode}`));
          if (mode === 'cached') dsRss = rssBytes(ds.pid);
          ctx.log(`  scale ${count} ${mode}: ${Math.round(median(modes[mode].map((x) => x.rps)))} req/s p99 ${Math.round(median(modes[mode].map((x) => x.p99)))} µs`);
          await ds.stop();
          ds = undefined;
        }
        const fig = (rs: WrkResult[]) => ({ rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)) });
        points.push({
          files: count,
          fillPerS: fill.value!,
          indexBytesPerFile: indexBytes / count,
          blockBytesPerFile: blockBytes / count,
          reopenMs: median(reopens),
          startMs: median(starts),
          nsRss: rssBytes(cluster.nameserver.pid),
          dsRss,
          cached: fig(modes.cached),
          uncached: fig(modes.uncached),
        });
      } finally {
        await ds?.stop().catch(() => {});
        await cluster.stop().catch(() => {});
      }
    }

    const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
    const first = points[0]!;
    const last = points[points.length - 1]!;
    const goals: Goal[] = [];
    const p99Growth = last.uncached.p99 / first.uncached.p99;
    const p99GrowthCached = last.cached.p99 / first.cached.p99;
    const atMillion = points.find((p) => p.files === 1_000_000);
    goals.push({ name: `p99 read latency at ${label(last.files)} files vs 10k (index cache off)`, target: '<= 1.2x', measured: ratio(p99Growth), met: atMillion ? p99Growth <= 1.2 : undefined });
    goals.push({ name: `p99 read latency at ${label(last.files)} files vs 10k (index cache on, default)`, target: '<= 1.2x', measured: ratio(p99GrowthCached), met: atMillion ? p99GrowthCached <= 1.2 : undefined });
    const maxIndex = Math.max(...points.map((p) => p.indexBytesPerFile));
    goals.push({ name: 'index bytes per file on disk', target: '<= 64', measured: `${maxIndex.toFixed(1)} B`, met: maxIndex <= 64 });
    goals.push({ name: 'reopen of 1M records (storage engine open)', target: '<= 3 s', measured: atMillion ? `${(atMillion.reopenMs / 1000).toFixed(2)} s` : '—', met: atMillion ? atMillion.reopenMs <= 3000 : undefined });

    const svg = chartSvg([
      { title: 'Read latency (index cache off)', yLabel: 'ms', xLabels: points.map((p) => `${label(p.files)} files`), series: [
        { name: 'p50', values: points.map((p) => p.uncached.p50 / 1000), color: '#1f77b4' },
        { name: 'p99', values: points.map((p) => p.uncached.p99 / 1000), color: '#d62728' },
        { name: 'p50, cache on', values: points.map((p) => p.cached.p50 / 1000), color: '#1f77b4', dashed: true },
        { name: 'p99, cache on', values: points.map((p) => p.cached.p99 / 1000), color: '#d62728', dashed: true },
      ] },
      { title: 'Read throughput (1 KB files)', yLabel: 'requests/s', xLabels: points.map((p) => `${label(p.files)} files`), series: [
        { name: 'index cache off', values: points.map((p) => p.uncached.rps), color: '#2ca02c' },
        { name: 'index cache on', values: points.map((p) => p.cached.rps), color: '#2ca02c', dashed: true },
      ] },
      { title: 'Index bytes per file on disk', yLabel: 'bytes', xLabels: points.map((p) => `${label(p.files)} files`), series: [
        { name: 'LevelDB index / files', values: points.map((p) => p.indexBytesPerFile), color: '#9467bd' },
        { name: 'goal (64)', values: points.map(() => 64), color: '#999', dashed: true },
      ] },
      { title: 'Reopen time and memory', yLabel: 'ms  /  MiB', xLabels: points.map((p) => `${label(p.files)} files`), series: [
        { name: 'store reopen (ms)', values: points.map((p) => p.reopenMs), color: '#ff7f0e' },
        { name: 'name-server RSS (MiB)', values: points.map((p) => p.nsRss / 2 ** 20), color: '#8c564b' },
        { name: 'data-server RSS (MiB)', values: points.map((p) => p.dsRss / 2 ** 20), color: '#17becf' },
      ] },
    ]);
    await writeChartPng(svg, join(ROOT, 'docs', 'benchmarks', 'scale.png'));

    const rows = points.map((p) => [
      label(p.files), num(p.fillPerS), `${p.indexBytesPerFile.toFixed(1)} B`, `${p.blockBytesPerFile.toFixed(0)} B`, `${num(p.reopenMs)} ms`, `${(p.startMs / 1000).toFixed(2)} s`, bytes(p.nsRss), bytes(p.dsRss),
    ]);
    const readRows = points.flatMap((p) => [
      [label(p.files), 'on (100k entries, default)', num(p.cached.rps), micros(p.cached.p50), micros(p.cached.p99)],
      [label(p.files), 'off (every read a LevelDB get)', num(p.uncached.rps), micros(p.uncached.p50), micros(p.uncached.p99)],
    ]);
    const md = [
      `Files of ${FILE_SIZE} B in one block of one data server (fsync off while generating; the generator is the storage engine itself, 512 appends in flight). Reads: wrk (2 threads, 32 connections) over a uniform random sample of ${num(SAMPLE)} fids, ${ctx.durationS} s per run, median of ${ctx.runs}; block files are in the page cache (this machine has ${ctx.machine.ramGiB} GiB of RAM), so the figures isolate index cost from disk cost.`,
      '',
      '![scale curves](benchmarks/scale.png)',
      '',
      table(['files', 'generated/s', 'index bytes/file', 'block bytes/file', 'store reopen', 'data-server start to listening', 'name-server RSS', 'data-server RSS'], rows),
      '',
      table(['files', 'index cache', 'req/s', 'p50', 'p99'], readRows),
      '',
      '"store reopen" is `BlockStore.open` (index meta scan and tail reconciliation) timed inside a process, median of 3; "start to listening" is the whole `ugcfs dataserver` process start, including Node and TypeScript loading. The name server holds blocks, not files, so its memory does not grow with the file count; the data server\'s RSS is measured after the reads with the index cache on.',
    ].join('\n');
    return { markdown: md, goals, commands, data: points };
  },
};
