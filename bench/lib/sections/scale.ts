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
import { wrkCommand, WRK_THREADS, WRK_CONNECTIONS, runWrk, checkWrk, type WrkResult } from '../wrk.ts';
import { median, Histogram } from '../stats.ts';
import { table, num, micros, bytes, ratio, filesLabel } from '../markdown.ts';
import { chartSvg, writeChartPng } from '../chart.ts';
import { rolesAvailable, startCluster, clientWriter, SECRET, type Cluster } from '../cluster.ts';
import { startUgcfs, runCommand, RUN_TS, ROOT, type Child } from '../spawn.ts';
import { holdInMemory, storageReadBytes, type Held } from '../resident.ts';
import { decodeFid } from '../../../src/wire/file-id.ts';
import { DS_ROUTES } from '../../../src/wire/protocol.ts';

/** the file counts measured (--quick leaves the last out) */
const COUNTS = [10_000, 100_000, 1_000_000];
const FILE_SIZE = 1024;
const BLOCK_SIZE = String(4 * 2 ** 30);
const SAMPLE = 20_000;
const LATENCY_CONNECTIONS = 4;
const LATENCY_THREADS = 1;
/** store reopens timed per size (the median is reported) */
const REOPENS = 3;
/** the data servers' --index-cache-entries in the cache-on runs (their default) */
const INDEX_CACHE_ENTRIES = 100_000;
/** the goal for the index's bytes per file on disk */
const INDEX_GOAL_BYTES = 64;
/** Latency runs last this many times the throughput runs: a p99 of sub-millisecond reads moves with every hiccup of a shared machine, and more samples steady it. */
const LATENCY_RUN_FACTOR = 3;
/** windows each size's latency time per round is cut into, taken in turn across the sizes */
const LATENCY_WINDOWS = 3;

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
  cached: { rps: number; p50: number; p99: number; p99Median: number; fromStorage: number };
  uncached: { rps: number; p50: number; p99: number; p99Median: number; fromStorage: number };
}

export const section: Section = {
  id: 'scale',
  title: `Scale: ${COUNTS.slice(0, -1).map(filesLabel).join(', ')} and ${filesLabel(COUNTS.at(-1)!)} files on one data server`,
  async run(ctx: BenchContext) {
    const roles = rolesAvailable();
    if (!roles.nameserver || !roles.dataserver || !ctx.tools.wrk) {
      return { values: { notMeasured: 'needs the name server, the data server and wrk' }, goals: [], commands: [], data: {} };
    }
    const counts = ctx.quick ? COUNTS.slice(0, -1) : COUNTS;
    const commands: string[] = [wrkCommand(ctx.durationS)];
    interface Stage { count: number; cluster: Cluster; dsDir: string; paths: string[]; fill: number; indexBytes: number; blockBytes: number; reopens: number[] }
    const stages: Stage[] = [];
    const live: Child[] = [];
    const dsArgs = (st: Stage, cache: number) => ['dataserver', '--data', st.dsDir, '--nameserver', st.cluster.nameserver.url, '--port', '0', '--block-size', BLOCK_SIZE, '--index-cache-entries', String(cache)];
    const points: Point[] = [];
    const ratios: { cached: number[]; uncached: number[] } = { cached: [], uncached: [] };
    const held: Held[] = [];
    let notHeld = '';
    /** bytes each size's data server read from storage during its latency runs, per mode */
    const fromStorage = new Map<number, Record<'cached' | 'uncached', number>>(counts.map((c) => [c, { cached: 0, uncached: 0 }]));
    /** each round's p99 (its windows pooled), per size and mode */
    const roundP99 = new Map<number, Record<'cached' | 'uncached', number[]>>(counts.map((c) => [c, { cached: [], uncached: [] }]));
    /** every latency of every latency window, per size and mode */
    const pooled = new Map<number, Record<'cached' | 'uncached', Histogram>>(counts.map((c) => [c, { cached: new Histogram(), uncached: new Histogram() }]));
    try {
      // 1. Fill: per size, a real name server allocates the block (so the data server's
      //    reports match what it knows), the data server stops, the generator fills it.
      for (const count of counts) {
        ctx.log(`  scale: generating ${count} files`);
        const dir = join(ctx.work, `n${count}`);
        const cluster = await startCluster({ dir, dataservers: 1, replicas: 1, dataserverArgs: ['--block-size', BLOCK_SIZE] });
        const st: Stage = { count, cluster, dsDir: cluster.dsDirs[0]!, paths: [], fill: 0, indexBytes: 0, blockBytes: 0, reopens: [] };
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
        for (let i = 0; i < REOPENS; i++) st.reopens.push((await generator(['reopen', '--dir', st.dsDir, '--block-size', BLOCK_SIZE])).value!);
        st.paths = (JSON.parse(readFileSync(fidsFile, 'utf8')) as string[]).map((f) => DS_ROUTES.needle.replace(':fid', f));
      }
      // 2. Reads: a data server per size, all up at once, measured round-robin so every
      //    size sees the same background load; then again with the index cache off. Each
      //    data server's directory (block file and index) is locked in memory first, so the
      //    reads stay page-cache reads (bench/lib/resident.ts); what they read from storage
      //    anyway is reported.
      for (const st of stages) {
        const h = await holdInMemory(ctx.tools.vmtouch, st.dsDir);
        if (typeof h === 'string') {
          // all sizes on the same footing: none held rather than some
          notHeld = h;
          ctx.log(`  scale: files not held in memory: ${h}`);
          for (const done of held.splice(0)) await done.release();
          break;
        }
        held.push(h);
      }
      if (!notHeld) commands.push('vmtouch -d -w -l -q -P PIDFILE DSDIR   (each size\'s data-server directory, locked in memory while its reads run)');
      const res = new Map<number, Record<'cached' | 'uncached', WrkResult[]>>(counts.map((c) => [c, { cached: [], uncached: [] }]));
      const starts = new Map<number, number[]>(counts.map((c) => [c, []]));
      const dsRss = new Map<number, number>();
      for (const mode of ['cached', 'uncached'] as const) {
        const cache = mode === 'cached' ? INDEX_CACHE_ENTRIES : 0;
        const servers: Child[] = [];
        for (const st of stages) {
          const t0 = Date.now();
          const ds = await startUgcfs(dsArgs(st, cache), { env: st.cluster.env });
          starts.get(st.count)!.push(Date.now() - t0);
          servers.push(ds);
          live.push(ds);
          if (st === stages[0]) commands.push(`ugcfs ${dsArgs(st, cache).join(' ').replace(st.dsDir, 'DSDIR').replace(st.cluster.nameserver.url, 'NAMESERVER')}`);
        }
        // Throughput at 32 connections (saturated); latency at 4 connections, with less
        // queueing. Each round's latency time per size is cut into windows taken in turn
        // across the sizes, and every window's latencies pool into one histogram per size:
        // a stall of this shared VM then lands on every size alike instead of on whichever
        // size's run it happened to catch, and p99 reads every sample of the section.
        const go = (i: number, d: number, c = WRK_CONNECTIONS) => runWrk({ wrk: ctx.tools.wrk!, url: servers[i]!.url, paths: stages[i]!.paths, headers: { 'x-ugcfs-secret': SECRET }, durationS: d, connections: c, threads: c >= WRK_CONNECTIONS ? WRK_THREADS : LATENCY_THREADS, histogram: c < WRK_CONNECTIONS });
        for (let i = 0; i < stages.length; i++) checkWrk(await go(i, 1), `scale ${stages[i]!.count} ${mode} warm-up`);
        for (let r = 0; r < ctx.runs; r++) {
          const round = stages.map(() => new Histogram());
          for (let i = 0; i < stages.length; i++) res.get(stages[i]!.count)![mode].push(checkWrk(await go(i, ctx.durationS), `scale ${stages[i]!.count} ${mode}`));
          for (let w = 0; w < LATENCY_WINDOWS; w++) {
            for (let i = 0; i < stages.length; i++) {
              const read0 = storageReadBytes(servers[i]!.pid);
              const l = checkWrk(await go(i, (ctx.durationS * LATENCY_RUN_FACTOR) / LATENCY_WINDOWS, LATENCY_CONNECTIONS), `scale ${stages[i]!.count} ${mode} latency`);
              fromStorage.get(stages[i]!.count)![mode] += storageReadBytes(servers[i]!.pid) - read0;
              round[i]!.add(l.latencies!);
              pooled.get(stages[i]!.count)![mode].add(l.latencies!);
            }
          }
          for (let i = 0; i < stages.length; i++) {
            const x = res.get(stages[i]!.count)![mode].at(-1)!;
            roundP99.get(stages[i]!.count)![mode].push(round[i]!.percentile(99));
            ctx.log(`  scale ${stages[i]!.count} ${mode} round ${r + 1}: ${Math.round(x.rps)} req/s; at ${LATENCY_CONNECTIONS} connections p50 ${round[i]!.percentile(50)} µs p99 ${round[i]!.percentile(99)} µs`);
          }
          ratios[mode].push(round[round.length - 1]!.percentile(99) / round[0]!.percentile(99));
        }
        if (mode === 'cached') servers.forEach((ds, i) => dsRss.set(stages[i]!.count, rssBytes(ds.pid)));
        for (const ds of servers) await ds.stop();
      }
      const fig = (rs: WrkResult[], h: Histogram, p99s: number[], read: number) => ({ rps: median(rs.map((x) => x.rps)), p50: h.percentile(50), p99: h.percentile(99), p99Median: median(p99s), fromStorage: read });
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
          cached: fig(res.get(st.count)!.cached, pooled.get(st.count)!.cached, roundP99.get(st.count)!.cached, fromStorage.get(st.count)!.cached),
          uncached: fig(res.get(st.count)!.uncached, pooled.get(st.count)!.uncached, roundP99.get(st.count)!.uncached, fromStorage.get(st.count)!.uncached),
        });
      }
    } finally {
      for (const h of held) await h.release();
      for (const ds of live) await ds.stop().catch(() => {});
      for (const st of stages) await st.cluster.stop().catch(() => {});
    }

    const label = filesLabel;
    const ratioRange = (rs: number[]) => `${ratio(Math.min(...rs))}-${ratio(Math.max(...rs))}`;
    const last = points[points.length - 1]!;
    const goals: Goal[] = [];
    // p99 of the pooled windows at the largest size over that at 10k (the per-round ratios,
    // each from one round's windows, are reported beside it for their spread)
    const p99Growth = last.uncached.p99 / points[0]!.uncached.p99;
    const p99GrowthCached = last.cached.p99 / points[0]!.cached.p99;
    const atMillion = points.find((p) => p.files === 1_000_000);
    const first = label(points[0]!.files);
    goals.push({ id: 'p99-off', name: `p99 read latency at ${label(last.files)} files vs ${first} (index cache off)`, target: '<= 1.2x', measured: ratio(p99Growth), met: atMillion ? p99Growth <= 1.2 : undefined });
    goals.push({ id: 'p99-on', name: `p99 read latency at ${label(last.files)} files vs ${first} (index cache on, default)`, target: '<= 1.2x', measured: ratio(p99GrowthCached), met: atMillion ? p99GrowthCached <= 1.2 : undefined });
    const maxIndex = Math.max(...points.map((p) => p.indexBytesPerFile));
    goals.push({ id: 'index-bytes', name: 'index bytes per file on disk', target: `<= ${INDEX_GOAL_BYTES}`, measured: `${maxIndex.toFixed(1)} B`, met: maxIndex <= INDEX_GOAL_BYTES });
    goals.push({ id: 'reopen', name: 'reopen of 1M records (storage engine open)', target: '<= 3 s', measured: atMillion ? `${(atMillion.reopenMs / 1000).toFixed(2)} s` : '—', met: atMillion ? atMillion.reopenMs <= 3000 : undefined });

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
        { name: `goal (${INDEX_GOAL_BYTES})`, values: points.map(() => INDEX_GOAL_BYTES), color: '#999', dashed: true },
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
      [label(p.files), `on (${label(INDEX_CACHE_ENTRIES)} entries, default)`, num(p.cached.rps), micros(p.cached.p50), micros(p.cached.p99), micros(p.cached.p99Median), bytes(p.cached.fromStorage)],
      [label(p.files), 'off (every read a LevelDB get)', num(p.uncached.rps), micros(p.uncached.p50), micros(p.uncached.p99), micros(p.uncached.p99Median), bytes(p.uncached.fromStorage)],
    ]);
    const values = {
      fileSize: FILE_SIZE,
      sample: num(SAMPLE),
      durationS: ctx.durationS,
      runs: ctx.runs,
      wrkConnections: WRK_CONNECTIONS,
      wrkThreads: WRK_THREADS,
      latencyConnections: LATENCY_CONNECTIONS,
      latencyThreads: LATENCY_THREADS,
      latencyS: ctx.durationS * LATENCY_RUN_FACTOR,
      windows: LATENCY_WINDOWS,
      windowS: (ctx.durationS * LATENCY_RUN_FACTOR) / LATENCY_WINDOWS,
      ratiosOn: ratioRange(ratios.cached),
      ratiosOff: ratioRange(ratios.uncached),
      notHeld,
      storeTable: table(['files', 'generated/s', 'index bytes/file', 'block bytes/file', 'store reopen', 'data-server start to listening', 'name-server RSS', 'data-server RSS'], rows),
      readTable: table(['files', 'index cache', `req/s (${WRK_CONNECTIONS} conns)`, `p50 (${LATENCY_CONNECTIONS} conns, pooled)`, `p99 (${LATENCY_CONNECTIONS} conns, pooled)`, 'p99, median of the rounds\' p99s', 'read from storage (latency runs)'], readRows),
      reopens: REOPENS,
    };
    return { values, goals, commands, data: points };
  },
};
