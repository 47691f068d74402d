// Origin resize misses (every request a variant never asked for before) against bare sharp
// doing the same resizes from memory (bench/peers/bare-sharp.ts), both over HTTP with the
// same closed-loop load, in interleaved rounds. Bare sharp runs with the origin's settings
// (bench/lib/sharp-peer.ts): the same sharp calls and options, as many resizes at once with
// the same libvips threads each, libvips' operation cache off. JSON lines
// per round (req/s and the server's CPU ms per resize), then a summary whose ratio is the
// median of the per-round ratios (goal: origin >= 0.9x).
// Run: node bin/run-ts.mjs bench/origin-resize.ts [--quick] [--duration S] [--runs N] [--concurrency C]
//        [--formats jpeg,webp] [--sharp-defaults]   (adds bare sharp with sharp's own defaults)
//        [--origin-args="..."]                      (extra flags for the origin)
//        [--no-disk-cache]                          (origin without --cache-dir: memory tier only)
//        [--profile DIR]                            (origin under node --cpu-prof; prints its hot functions)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { startCluster, originUpload } from './lib/cluster.ts';
import { runLoad, checkLoad } from './lib/load.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { startBareSharp } from './lib/sharp-peer.ts';
import { nowUs, summarizeProfiles } from './lib/cpu-profile.ts';
import { CORPUS, killAll, startPeer, type Child } from './lib/spawn.ts';
import { median, medianRatio } from './lib/stats.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'shorter and fewer rounds, for a smoke check'),
  duration: opt.number(5, 'seconds per load run', { min: 1 }),
  runs: opt.int(5, 'measured rounds per format', { min: 1 }),
  concurrency: opt.int(4, 'requests in flight', { min: 1 }),
  // bare sharp, the ceiling compared against, encodes only these two
  formats: opt.list(['jpeg', 'webp'], 'output formats measured', { choices: ['jpeg', 'webp'] }),
  sharpDefaults: opt.bool(false, "also measure bare sharp with sharp's own defaults"),
  originArgs: opt.string('', 'extra flags for the origin, space-separated (--origin-args="--workers 2")'),
  noDiskCache: opt.bool(false, 'origin without --cache-dir: memory tier only'),
  profile: opt.string('', 'run the origin under node --cpu-prof into this directory and print its hot functions'),
}, { quick: { duration: 3, runs: 3 } });
const { duration: durationS, runs, concurrency, formats } = flags;
const originArgs = flags.originArgs.split(' ').filter(Boolean);
// Every request is a new variant from one address: the flood limits would measure 429s.
const UNLIMITED = ['--variant-rate', '0', '--max-variants-per-file', '0'];
const profileDir = flags.profile || undefined;
const PHOTOS = join(CORPUS, 'photos');
const agent = new Agent({ connections: 64 });

async function fetchBytes(url: string): Promise<number> {
  const res = await request(url, { dispatcher: agent });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${body.toString('utf8', 0, 200)}`);
  return body.length;
}

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-resize-'));
try {
  const photos = readdirSync(PHOTOS).filter((f) => f.endsWith('.jpg')).sort();
  const cluster = await startCluster({ dir: join(work, 'cluster'), dataservers: 1, replicas: 1, origin: true, originArgs: [...UNLIMITED, ...(flags.noDiskCache ? [] : ['--cache-dir', join(work, 'cache')]), ...originArgs], nodeFlags: { origin: profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : undefined } });
  const origin = cluster.origin!;
  const fids = new Map<string, string>();
  for (const p of photos) fids.set(p, await originUpload(origin.url, readFileSync(join(PHOTOS, p)), 'image/jpeg'));
  const peers: Record<string, Child> = { sharp: await startBareSharp(PHOTOS) };
  if (flags.sharpDefaults) peers.sharpDefaults = await startPeer('bare-sharp', ['--dir', PHOTOS, '--vips-cache']);
  let serial = 0;
  // A global counter over (photo, width) pairs: no variant repeats, so every origin request misses.
  const next = () => { const n = serial++; return { p: photos[n % photos.length]!, w: 240 + (Math.floor(n / photos.length) % 1200) }; };
  const targets: Record<string, { pid: number; url: (p: string, w: number, fmt: string) => string }> = {
    origin: { pid: origin.pid, url: (p, w, fmt) => `${origin.url}/${fids.get(p)}?w=${w}&q=80&fmt=${fmt}` },
  };
  for (const [id, peer] of Object.entries(peers)) targets[id] = { pid: peer.pid, url: (p, w, fmt) => `${peer.url}/resize/${p}?w=${w}&q=80&fmt=${fmt}` };
  const loadFrom = nowUs();
  for (const fmt of formats) {
    const ops: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    const cpu: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    for (let r = 0; r <= runs; r++) {
      // Alternate which side goes first, so neither always runs right after the other.
      const order = Object.entries(targets);
      if (r % 2 === 1) order.reverse();
      for (const [id, t] of order) {
        const c0 = processCpuMs(t.pid);
        const res = checkLoad(await runLoad({ concurrency, durationS: r === 0 ? 1 : durationS, op: () => { const v = next(); return fetchBytes(t.url(v.p, v.w, fmt)); } }), `${fmt} ${id}`);
        const cpuPerOp = (processCpuMs(t.pid) - c0) / Math.max(1, res.ops);
        if (r === 0) continue;
        ops[id]!.push(res.opsPerS);
        cpu[id]!.push(cpuPerOp);
        console.log(JSON.stringify({ bench: 'origin-resize', fmt, round: r, target: id, per_s: Number(res.opsPerS.toFixed(1)), cpu_ms: Number(cpuPerOp.toFixed(1)), p50_us: Math.round(res.p50), p99_us: Math.round(res.p99) }));
      }
    }
    const ratio = medianRatio(ops.origin!, ops.sharp!);
    const summary: Record<string, unknown> = { bench: 'origin-resize', fmt, summary: true };
    for (const id of Object.keys(targets)) {
      summary[`${id}_per_s`] = Number(median(ops[id]!).toFixed(1));
      summary[`${id}_cpu_ms`] = Number(median(cpu[id]!).toFixed(1));
    }
    console.log(JSON.stringify({ ...summary, ratio: Number(ratio.toFixed(3)), goal: '>= 0.9', met: ratio >= 0.9 }));
  }
  const loadTo = nowUs();
  for (const p of Object.values(peers)) await p.stop();
  await cluster.stop();
  // Only samples taken under load: start-up (module loading, uploads) is left out.
  const prof = profileDir ? summarizeProfiles(profileDir, { fromUs: loadFrom, toUs: loadTo }, 40) : undefined;
  if (prof) {
    console.log(JSON.stringify({ profile: 'origin', busyMs: Math.round(prof.busyMs) }));
    for (const f of prof.functions) console.log(JSON.stringify({ profile: 'origin', fn: f.name, ms: Math.round(f.selfMs), share: Math.round(f.share * 1000) / 10 }));
  }
} finally {
  killAll();
  rmSync(work, { recursive: true, force: true });
}
