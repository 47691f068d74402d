// Origin cache hits against nginx serving the very same variant bytes as static files.
// Prints one JSON line per round and target, then a summary line with the median ratio
// (goal: origin >= 0.45x nginx).
// Run: node bin/run-ts.mjs bench/origin-hits.ts [--quick] [--duration S] [--runs N] [--threads T] [--workers W]
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startCluster, originUpload } from './lib/cluster.ts';
import { startNginx } from './lib/nginx.ts';
import { detectTools } from './lib/preflight.ts';
import { CORPUS, killAll, startPeer } from './lib/spawn.ts';
import { runWrk, checkWrk } from './lib/wrk.ts';
import { median } from './lib/stats.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

// Defaults match bench/lib/compare.ts (the BENCHMARKS.md figures): 2 wrk threads, nginx one worker per core.
const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, "accepted, as the bench's external section passes it to every script; this one has no shorter form"),
  duration: opt.number(5, 'seconds per wrk run', { min: 1 }),
  runs: opt.int(3, 'measured rounds (after one warm-up round)', { min: 1 }),
  threads: opt.int(2, 'wrk threads', { min: 1 }),
  workers: opt.int(0, 'nginx worker processes (0: one per core)', { min: 0 }),
});
const { duration: durationS, runs, threads } = flags;
const workers = flags.workers || 'auto';
const tools = await detectTools();
if (!tools.wrk || !tools.nginx) {
  console.log(JSON.stringify({ bench: 'origin-hits', skipped: 'needs wrk and nginx (apt-get install wrk nginx-light)' }));
  process.exit(0);
}
const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-hits-'));
try {
  const cluster = await startCluster({ dir: join(work, 'cluster'), dataservers: 1, replicas: 1, origin: true });
  const origin = cluster.origin!.url;
  const staticDir = join(work, 'static');
  mkdirSync(staticDir);
  const paths: { origin: string; static: string }[] = [];
  const photos = readdirSync(join(CORPUS, 'photos')).filter((f) => f.endsWith('.jpg'));
  for (const p of photos) {
    const fid = await originUpload(origin, readFileSync(join(CORPUS, 'photos', p)), 'image/jpeg');
    for (const fmt of ['jpeg', 'webp']) {
      const path = `/${fid}?w=400&fmt=${fmt}`;
      const res = await request(origin + path);
      const body = Buffer.from(await res.body.arrayBuffer());
      if (res.statusCode !== 200) throw new Error(`${path}: HTTP ${res.statusCode} ${body.toString('utf8', 0, 200)}`);
      const name = `${p}.400.${fmt}`;
      writeFileSync(join(staticDir, name), body);
      paths.push({ origin: path, static: `/static/${name}` });
    }
  }
  const ng = await startNginx(tools, { dir: join(work, 'nginx'), staticRoot: staticDir, workers });
  // The framework ceiling the issue quotes (a bare fastify route returning a Buffer), same bytes.
  const fastify = await startPeer('bare-fastify', ['--dir', staticDir]);
  const rps: Record<string, number[]> = { nginx: [], origin: [], fastify: [] };
  const targets = [
    ['nginx', ng.url, paths.map((p) => p.static)],
    ['origin', origin, paths.map((p) => p.origin)],
    ['fastify', fastify.url, paths.map((p) => p.static)],
  ] as const;
  for (let r = 0; r <= runs; r++) {
    for (const [id, url, ps] of targets) {
      const res = checkWrk(await runWrk({ wrk: tools.wrk, url, paths: ps, threads, connections: 32, durationS: r === 0 ? 1 : durationS }), id);
      if (r === 0) continue; // warm-up
      rps[id]!.push(res.rps);
      console.log(JSON.stringify({ bench: 'origin-hits', round: r, target: id, rps: Math.round(res.rps), p50_us: res.p50, p99_us: res.p99 }));
    }
  }
  const ratio = median(rps.origin!) / median(rps.nginx!);
  const fastifyRatio = median(rps.fastify!) / median(rps.nginx!);
  console.log(JSON.stringify({ bench: 'origin-hits', summary: true, threads, nginx_workers: workers, nginx_rps: Math.round(median(rps.nginx!)), origin_rps: Math.round(median(rps.origin!)), bare_fastify_rps: Math.round(median(rps.fastify!)), ratio: Number(ratio.toFixed(3)), bare_fastify_ratio: Number(fastifyRatio.toFixed(3)), goal: '>= 0.45', met: ratio >= 0.45 }));
  await fastify.stop();
  await ng.stop();
  await cluster.stop();
} finally {
  killAll();
  rmSync(work, { recursive: true, force: true });
}
