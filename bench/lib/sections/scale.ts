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
import { rolesAvailable, startCluster, clientWriter, SECRET, type Cluster } from '../cluster.ts';
import { startUgcfs, runCommand, RUN_TS, ROOT, type Child } from '../spawn.ts';
import { decodeFid } from '../../../src/file-id.ts';
import { DS_ROUTES } from '../../../src/protocol.ts';

const FILE_SIZE = 1024;
const BLOCK_SIZE = String(4 * 2 ** 30);
const SAMPLE = 20_000;
const LATENCY_CONNECTIONS = 4;
/** Latency runs last this many times the throughput runs: a p99 of sub-millisecond reads moves with every hiccup of a shared machine, and more samples steady it. */
const LATENCY_RUN_FACTOR = 3;

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
    const commands: string[] = [`wrk -t 2 -c 32 -d ${ctx.durationS}s --timeout 10s -s ROUND_ROBIN.lua URL   (the Lua script walks the file list, one JSON summary line; bench/lib/wrk.ts)`];
    interface Stage { count: number; cluster: Cluster; dsDir: string; paths: string[]; fill: number; indexBytes: number; blockBytes: number; reopens: number[] }
    const stages: Stage[] = [];
    const live: Child[] = [];
    const dsArgs = (st: Stage, cache: number) => ['dataserver', '--data', st.dsDir, '--nameserver', st.cluster.nameserver.url, '--port', '0', '--block-size', BLOCK_SIZE, '--index-cache-entries', String(cache)];
    const points: Point[] = [];
    const ratios: { cached: number[]; uncached: number[] } = { cached: [], uncached: [] };
    try {
      // 1. Fill: per size, a real name server allocates the block (so the data server's
      //    reports match what it knows), the data server stops, the generator fills it.
      for (const count of counts) {
        ctx.log(`  scale: generating ${count} files`);
        const dir = join(ctx.work, `n${count}`);
        const cluster = await startCluster({ dir, dataservers: 1, replicas: 1, dataserverArgs: ['--block-size', BLOCK_SIZE] });
        const st: Stage = { count, cluster, dsDir: join(dir, 'ds0'), paths: [], fill: 0, indexBytes: 0, blockBytes: 0, reopens: [] };
        stages.push(st);
        const w = await clientWriter(cluster.nameserver.url);
        const block = decodeFid(await w.put(Buffer.alloc(FILE_SIZE, 1), 'application/octet-stream', 1)).block;
        await w.close?.();
        await cluster.dataservers[0]!.stop();
        const fidsFile = join(dir, 'fids.json');
        const genArgs = ['fill', '--dir', st.dsDir, '--block', String(block), '--count', String(count), '--size', String(FILE_SIZE), '--block-size', BLOCK_SIZE, '--sample', String(SAMPLE), '--out', fidsFile];
        if (count === counts[0]) commands.push(`node bin/run-ts.mjs bench/scale-generate.ts ${genArgs.join(' ').replace(st.dsDir, 'DSDIR').replace(fidsFile, 'FIDS')}`);
        st.fill = (await generator(genArgs)).value!;
        st.indexBytes = du(join(st.dsDir, 'index'));
        st.blockBytes = du(join(st.dsDir, 'blocks'));
        for (let i = 0; i < 3; i++) st.reopens.push((await generator(['reopen', '--dir', st.dsDir, '--block-size', BLOCK_SIZE])).value!);
        st.paths = (JSON.parse(readFileSync(fidsFile, 'utf8')) as string[]).map((f) => DS_ROUTES.needle.replace(':fid', f));
      }
      // 2. Reads: a data server per size, all up at once, measured round-robin so every
      //    size sees the same background load; then again with the index cache off.
      const res = new Map<number, Record<'cached' | 'uncached', WrkResult[]>>(counts.map((c) => [c, { cached: [], uncached: [] }]));
      const starts = new Map<number, number[]>(counts.map((c) => [c, []]));
      const dsRss = new Map<number, number>();
      for (const mode of ['cached', 'uncached'] as const) {
        const cache = mode === 'cached' ? 100_000 : 0;
        const servers: Child[] = [];
        for (const st of stages) {
          const t0 = Date.now();
          const ds = await startUgcfs(dsArgs(st, cache), { env: st.cluster.env });
          starts.get(st.count)!.push(Date.now() - t0);
          servers.push(ds);
          live.push(ds);
          if (st === stages[0]) commands.push(`ugcfs ${dsArgs(st, cache).join(' ').replace(st.dsDir, 'DSDIR').replace(st.cluster.nameserver.url, 'NAMESERVER')}`);
        }
        // Throughput at 32 connections (saturated); latency at 4 connections, below
        // saturation, so p50/p99 show the cost of a read rather than queueing behind others.
        const go = (i: number, d: number, c = 32) => runWrk({ wrk: ctx.tools.wrk!, url: servers[i]!.url, paths: stages[i]!.paths, headers: { 'x-ugcfs-secret': SECRET }, durationS: d, connections: c, threads: c >= 32 ? 2 : 1 });
        for (let i = 0; i < stages.length; i++) checkWrk(await go(i, 1), `scale ${stages[i]!.count} ${mode} warm-up`);
        for (let r = 0; r < ctx.runs; r++) {
          const round: WrkResult[] = [];
          for (let i = 0; i < stages.length; i++) {
            const x = checkWrk(await go(i, ctx.durationS), `scale ${stages[i]!.count} ${mode}`);
            const l = checkWrk(await go(i, ctx.durationS * LATENCY_RUN_FACTOR, LATENCY_CONNECTIONS), `scale ${stages[i]!.count} ${mode} latency`);
            res.get(stages[i]!.count)![mode].push({ ...x, p50: l.p50, p90: l.p90, p99: l.p99 });
            round.push(l);
            ctx.log(`  scale ${stages[i]!.count} ${mode} round ${r + 1}: ${Math.round(x.rps)} req/s; at ${LATENCY_CONNECTIONS} connections p50 ${Math.round(l.p50)} µs p99 ${Math.round(l.p99)} µs`);
          }
          ratios[mode].push(round[round.length - 1]!.p99 / round[0]!.p99);
        }
        if (mode === 'cached') servers.forEach((ds, i) => dsRss.set(stages[i]!.count, rssBytes(ds.pid)));
        for (const ds of servers) await ds.stop();
      }
      const fig = (rs: WrkResult[]) => ({ rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)) });
      for (const st of stages) {
        points.push({
          files: st.count,
          fillPerS: st.fill,
          indexBytesPerFile: st.indexBytes / st.count,
          blockBytesPerFile: st.blockBytes / st.count,
          reopenMs: median(st.reopens),
          startMs: median(starts.get(st.count)!),
          nsRss: rssBytes(st.cluster.nameserver.pid),
          dsRss: dsRss.get(st.count) ?? Number.NaN,
          cached: fig(res.get(st.count)!.cached),
          uncached: fig(res.get(st.count)!.uncached),
        });
      }
    } finally {
      for (const ds of live) await ds.stop().catch(() => {});
      for (const st of stages) await st.cluster.stop().catch(() => {});
    }

    const label = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`);
    const last = points[points.length - 1]!;
    const goals: Goal[] = [];
    // medians of per-round ratios: each round read every size back to back
    const p99Growth = median(ratios.uncached);
    const p99GrowthCached = median(ratios.cached);
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
      `Files of ${FILE_SIZE} B in one block of one data server per size (fsync off while generating; the generator is the storage engine itself, 512 appends in flight). Reads: one data server per size, all running at once and measured one after the other in each round (so all sizes share the background load); wrk over a uniform random sample of ${num(SAMPLE)} fids, ${ctx.durationS} s per run, median of ${ctx.runs} rounds; req/s at 32 connections (2 threads), p50/p99 from a second run of ${ctx.durationS * LATENCY_RUN_FACTOR} s at ${LATENCY_CONNECTIONS} connections (1 thread), below saturation, so they show what a read costs rather than time queued; the p99 growth goal is the median of the per-round ratios; block files are in the page cache (this machine has ${ctx.machine.ramGiB} GiB of RAM), so the figures isolate index cost from disk cost.`,
      '',
      '![scale curves](benchmarks/scale.png)',
      '',
      table(['files', 'generated/s', 'index bytes/file', 'block bytes/file', 'store reopen', 'data-server start to listening', 'name-server RSS', 'data-server RSS'], rows),
      '',
      table(['files', 'index cache', 'req/s (32 conns)', `p50 (${LATENCY_CONNECTIONS} conns)`, `p99 (${LATENCY_CONNECTIONS} conns)`], readRows),
      '',
      '"store reopen" is `BlockStore.open` (index meta scan and tail reconciliation) timed inside a process, median of 3; "start to listening" is the whole `ugcfs dataserver` process start, including Node and TypeScript loading. The name server holds blocks, not files, so its memory does not grow with the file count; the data server\'s RSS is measured after the reads with the index cache on.',
    ].join('\n');
    return { markdown: md, goals, commands, data: points };
  },
};
