// Origin resize misses against sharp as a user runs it (bench/peers/sharp-defaults.ts: sharp's
// defaults, rotate + resize + encode at q80, no limits), side by side in one run. The origin
// runs as `ugcfs origin` does by default (no --cache-dir, one process, default resize slots),
// except that the per-client miss limit and the per-file variant cap are off: every request
// here is a new variant from one address, which is exactly what those two exist to refuse.
// Sources: every image in test/fixtures/photos (JPEG, PNG, WebP; 1280-4096 px wide); each
// request names a (source, width) pair that target has never been asked for, and widths stay
// under the narrowest source, so neither side enlarges. Every origin answer must say
// X-Cache: MISS. 4 clients at once; rounds alternate which side goes first. JSON lines per
// round (resizes/s and the server's CPU ms per resize), then a summary per format whose
// ratio is the median of the per-round ratios.
// Run: node bin/run-ts.mjs bench/origin-resize.ts [--quick] [--duration S] [--runs N] [--concurrency C]
//        [--formats jpeg,webp] [--sources a.jpg,b.png]  (default: every image in test/fixtures/photos)
//        [--origin-args="..."]                          (extra flags for the origin)
//        [--compare-args="..."]                         (a second origin, its flags changed, as another target)
//        [--disk-cache]                                 (origin with --cache-dir: the disk tier written on each miss)
//        [--limits-peer]                                (adds bench/peers/bare-sharp.ts with the origin's limits)
//        [--stages]                                     (only the CPU of each step of a miss, in-process; no servers)
//        [--perf-map]                                   (JIT symbol maps for `perf record -p PID`; the pids are printed)
//        [--profile DIR]                                (origin and sharp under node --cpu-prof; their main threads' hot functions)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { Agent, request } from 'undici';
import sharp from 'sharp';
import { startCluster, originUpload } from './lib/cluster.ts';
import { runLoad, checkLoad } from './lib/load.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { startBareSharp } from './lib/sharp-peer.ts';
import { nowUs, summarizeProfiles } from './lib/cpu-profile.ts';
import { CORPUS, killAll, startPeer, startUgcfs, type Child } from './lib/spawn.ts';
import { median, medianRatio } from './lib/stats.ts';
import { parseFlags } from './lib/flags.ts';
import { scrapeMetrics } from '../test/helpers/metrics-scrape.ts';
import { resizeStages } from './lib/sections/resize-stages.ts';
import { ORIGIN_OPTIONS } from '../origin/config.ts';
import { addThreadKinds, threadCpuMs, threadKindsCpuMs, type ThreadKind } from './lib/sections/resize-threads.ts';
import { opt } from '../src/base/config.ts';

const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'shorter and fewer rounds, for a smoke check'),
  duration: opt.number(5, 'seconds per load run', { min: 1 }),
  runs: opt.int(5, 'measured rounds per format', { min: 1 }),
  concurrency: opt.int(4, 'requests in flight', { min: 1 }),
  formats: opt.list(['jpeg', 'webp'], 'output formats measured', { choices: ['jpeg', 'webp'] }),
  sources: opt.list([], 'source images in test/fixtures/photos (empty: all of them)'),
  originArgs: opt.string('', 'extra flags for the origin, space-separated (--origin-args="--workers 2")'),
  compareArgs: opt.string('', 'also measure a second origin on the same cluster, started with these extra flags (--compare-args="--resize-concurrency 2")'),
  diskCache: opt.bool(false, 'origin with --cache-dir: every miss also written to the disk tier'),
  limitsPeer: opt.bool(false, "also measure bare sharp run with the origin's limits (bench/peers/bare-sharp.ts)"),
  stages: opt.bool(false, "only print what each step of a miss costs in CPU, measured in this process (bench/lib/sections/resize-stages.ts)"),
  perfMap: opt.bool(false, 'origin and peer write /tmp/perf-PID.map, so `perf record -p PID` names their JavaScript'),
  profile: opt.string('', 'run the origin and the sharp peer under node --cpu-prof into this directory and print their hot functions'),
}, { quick: { duration: 3, runs: 3 } });
const { duration: durationS, runs, concurrency, formats } = flags;
const originArgs = flags.originArgs.split(' ').filter(Boolean);
const UNLIMITED = ['--variant-rate', '0', '--max-variants-per-file', '0'];
const GOAL = 0.95;
const QUALITY = 80;
const MIN_WIDTH = 200;
const profileDir = flags.profile || undefined;
const PHOTOS = join(CORPUS, 'photos');
const MIME: Record<string, string> = { '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };
const agent = new Agent({ connections: 64 });

async function fetchBytes(url: string, mustMiss: boolean): Promise<number> {
  const res = await request(url, { dispatcher: agent });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${body.toString('utf8', 0, 200)}`);
  if (mustMiss && res.headers['x-cache'] !== 'MISS') throw new Error(`${url} answered X-Cache: ${String(res.headers['x-cache'])}, not a miss`);
  return body.length;
}

/** CPU ms of `pid`'s main thread alone: its JavaScript, the HTTP work and the copies. */
const mainThreadCpuMs = (pid: number) => threadCpuMs(pid, pid);

if (flags.stages) {
  const all = readdirSync(PHOTOS).filter((f) => MIME[extname(f)] !== undefined).sort();
  for (const st of await resizeStages(PHOTOS, flags.sources.length ? flags.sources : all, ORIGIN_OPTIONS.resizeConcurrency.default)) {
    console.log(JSON.stringify({ bench: 'origin-resize', stage: st.stage, cpu_us: Number(st.us.toFixed(st.us < 100 ? 2 : 0)), per: st.per }));
  }
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-resize-'));
try {
  const all = readdirSync(PHOTOS).filter((f) => MIME[extname(f)] !== undefined).sort();
  const photos = flags.sources.length ? flags.sources : all;
  for (const p of photos) if (!all.includes(p)) throw new Error(`--sources: ${p} is not an image in ${PHOTOS}`);
  const widths = await Promise.all(photos.map(async (p) => (await sharp(join(PHOTOS, p)).metadata()).width));
  const span = Math.min(...widths) - MIN_WIDTH;
  const cluster = await startCluster({
    dir: join(work, 'cluster'), dataservers: 1, replicas: 1, origin: true,
    originArgs: [...UNLIMITED, ...(flags.diskCache ? ['--cache-dir', join(work, 'cache')] : []), ...originArgs],
    nodeFlags: { origin: profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, 'origin')] : flags.perfMap ? ['--perf-basic-prof-only-functions'] : undefined },
  });
  const origin = cluster.origin!;
  const fids = new Map<string, string>();
  for (const p of photos) fids.set(p, await originUpload(origin.url, readFileSync(join(PHOTOS, p)), MIME[extname(p)]!));
  const peers: Record<string, Child> = { sharp: await startPeer('sharp-defaults', ['--dir', PHOTOS], { nodeFlags: profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, 'sharp')] : flags.perfMap ? ['--perf-basic-prof-only-functions'] : undefined }) };
  if (flags.limitsPeer) peers.sharpLimits = await startBareSharp(PHOTOS);
  console.log(JSON.stringify({ bench: 'origin-resize', pids: { origin: origin.pid, ...Object.fromEntries(Object.entries(peers).map(([k, c]) => [k, c.pid])) }, sources: photos, widths: `${MIN_WIDTH}-${MIN_WIDTH + span - 1}`, concurrency, originArgs: [...UNLIMITED, ...(flags.diskCache ? ['--cache-dir', 'DIR'] : []), ...originArgs].join(' ') }));
  interface Target { pid: number; miss: boolean; url: (p: string, w: number, fmt: string) => string; serial: number }
  const targets: Record<string, Target> = {
    origin: { pid: origin.pid, miss: true, serial: 0, url: (p, w, fmt) => `${origin.url}/${fids.get(p)}?w=${w}&q=${QUALITY}&fmt=${fmt}` },
  };
  if (flags.compareArgs) {
    const args = ['origin', '--nameserver', cluster.nameserver.url, '--port', '0', ...UNLIMITED, ...(flags.diskCache ? ['--cache-dir', join(work, 'cache-b')] : []), ...flags.compareArgs.split(' ').filter(Boolean)];
    const b = await startUgcfs(args, { env: cluster.env });
    targets.originB = { pid: b.pid, miss: true, serial: 0, url: (p, w, fmt) => `${b.url}/${fids.get(p)}?w=${w}&q=${QUALITY}&fmt=${fmt}` };
    console.log(JSON.stringify({ bench: 'origin-resize', originB: args.slice(5).join(' ') }));
  }
  for (const [id, peer] of Object.entries(peers)) targets[id] = { pid: peer.pid, miss: false, serial: 0, url: (p, w, fmt) => `${peer.url}/resize/${p}?w=${w}&q=${QUALITY}&fmt=${fmt}` };
  // Per target and format, a counter over (source, width) pairs: sources round-robin, widths
  // walk up, so no target is asked the same variant twice in a run.
  const next = (t: Target) => {
    const n = t.serial++;
    if (n >= photos.length * span) throw new Error('ran out of distinct variants: lower --duration or --runs');
    return { p: photos[n % photos.length]!, w: MIN_WIDTH + Math.floor(n / photos.length) };
  };
  const loadFrom = nowUs();
  for (const fmt of formats) {
    for (const t of Object.values(targets)) t.serial = 0;
    const ops: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    const main: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    // CPU by thread kind over all measured rounds (threads come and go, so summed, not per round)
    const kinds: Record<string, Record<ThreadKind, number>> = Object.fromEntries(Object.keys(targets).map((k) => [k, { main: 0, libvips: 0, other: 0 }]));
    const opsDone: Record<string, number> = {};
    for (let r = 0; r <= runs; r++) {
      // Alternate which side goes first, so neither always runs right after the other.
      const order = Object.entries(targets);
      if (r % 2 === 1) order.reverse();
      for (const [id, t] of order) {
        const c0 = processCpuMs(t.pid);
        const m0 = mainThreadCpuMs(t.pid);
        const k0 = threadKindsCpuMs(t.pid);
        const res = checkLoad(await runLoad({ concurrency, durationS: r === 0 ? 1 : durationS, op: () => { const v = next(t); return fetchBytes(t.url(v.p, v.w, fmt), t.miss); } }), `${fmt} ${id}`);
        const cpuPerOp = (processCpuMs(t.pid) - c0) / Math.max(1, res.ops);
        const mainPerOp = (mainThreadCpuMs(t.pid) - m0) / Math.max(1, res.ops);
        const k1 = threadKindsCpuMs(t.pid);
        if (r > 0) addThreadKinds(kinds[id]!, k0, k1);
        if (r > 0) opsDone[id] = (opsDone[id] ?? 0) + res.ops;
        if (r === 0) continue; // warm-up: thread pools, JIT, the origin's first fetch of each original
        ops[id]!.push(res.opsPerS);
        cpu[id]!.push(cpuPerOp);
        main[id]!.push(mainPerOp);
        console.log(JSON.stringify({ bench: 'origin-resize', fmt, round: r, target: id, per_s: Number(res.opsPerS.toFixed(1)), cpu_ms: Number(cpuPerOp.toFixed(1)), main_ms: Number(mainPerOp.toFixed(2)), p50_us: Math.round(res.p50), p99_us: Math.round(res.p99) }));
      }
    }
    const ratio = medianRatio(ops.origin!, ops.sharp!);
    const summary: Record<string, unknown> = { bench: 'origin-resize', fmt, summary: true };
    for (const id of Object.keys(targets)) {
      summary[`${id}_per_s`] = Number(median(ops[id]!).toFixed(1));
      summary[`${id}_cpu_ms`] = Number(median(cpu[id]!).toFixed(1));
      summary[`${id}_main_ms`] = Number(median(main[id]!).toFixed(2));
    }
    for (const id of Object.keys(targets)) {
      summary[`${id}_threads_ms`] = Object.fromEntries(Object.entries(kinds[id]!).map(([k, v]) => [k, Number((v / Math.max(1, opsDone[id] ?? 0)).toFixed(2))]));
    }
    const perRound = ops.origin!.map((o, i) => Number((o / ops.sharp![i]!).toFixed(2)));
    console.log(JSON.stringify({ ...summary, ratio: Number(ratio.toFixed(3)), rounds: perRound, goal: `>= ${GOAL}`, met: ratio >= GOAL }));
  }
  const loadTo = nowUs();
  // Peak resident memory of each server over the run (VmHWM): the resize slots' bound at work.
  const peakMb = (pid: number) => { try { return Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024); } catch { return Number.NaN; } };
  console.log(JSON.stringify({ bench: 'origin-resize', peak_rss_mb: Object.fromEntries(Object.entries(targets).map(([id, t]) => [id, peakMb(t.pid)])) }));
  // What the origin counted: every request a computed variant, and how often an original had
  // to come from the data servers instead of the memory tier.
  const m = await scrapeMetrics(origin.url);
  console.log(JSON.stringify({
    bench: 'origin-resize', origin_counted: true,
    resizes: m.value('ugcfs_resizes_total', {}, { sum: true }),
    memory_hits: m.value('ugcfs_cache_lookups_total', { tier: 'memory', result: 'hit' }),
    memory_misses: m.value('ugcfs_cache_lookups_total', { tier: 'memory', result: 'miss' }),
  }));
  for (const p of Object.values(peers)) await p.stop();
  await cluster.stop();
  // Only samples taken under load: start-up (module loading, uploads) is left out. Both
  // main threads are profiled; libvips' own threads never show in a V8 profile.
  for (const who of profileDir ? ['origin', 'sharp'] : []) {
    const prof = summarizeProfiles(join(profileDir!, who), { fromUs: loadFrom, toUs: loadTo }, 30);
    if (!prof) continue;
    console.log(JSON.stringify({ profile: who, busyMs: Math.round(prof.busyMs), totalMs: Math.round(prof.totalMs) }));
    for (const c of prof.components.slice(0, 15)) console.log(JSON.stringify({ profile: who, component: c.component, ms: Math.round(c.selfMs), share: Math.round(c.share * 1000) / 10 }));
    for (const f of prof.functions) console.log(JSON.stringify({ profile: who, fn: f.name, component: f.component, ms: Math.round(f.selfMs), share: Math.round(f.share * 1000) / 10 }));
  }
} finally {
  killAll();
  rmSync(work, { recursive: true, force: true });
}
