// Origin resize misses (every request a variant never asked for before) against bare sharp
// doing the same resizes from memory (bench/peers/bare-sharp.ts), both over HTTP with the
// same closed-loop load. JSON lines per round, then a summary (goal: origin >= 0.9x).
// Run: node bin/run-ts.mjs bench/origin-resize.ts [--duration S] [--runs N] [--concurrency C]
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parseArgv } from '../src/config.ts';
import { startCluster, originUpload } from './lib/cluster.ts';
import { runLoad, checkLoad } from './lib/load.ts';
import { CORPUS, killAll, startPeer } from './lib/spawn.ts';
import { median } from './lib/stats.ts';

const { flags } = parseArgv(process.argv.slice(2));
const durationS = Number(flags.get('--duration') ?? 5);
const runs = Number(flags.get('--runs') ?? 3);
const concurrency = Number(flags.get('--concurrency') ?? 4);
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
  const cluster = await startCluster({ dir: join(work, 'cluster'), dataservers: 1, replicas: 1, origin: true });
  const origin = cluster.origin!.url;
  const fids = new Map<string, string>();
  for (const p of photos) fids.set(p, await originUpload(origin, readFileSync(join(PHOTOS, p)), 'image/jpeg'));
  const sharpPeer = await startPeer('bare-sharp', ['--dir', PHOTOS]);
  let serial = 0;
  // A global counter over (photo, width) pairs: no variant repeats, so every origin request misses.
  const next = () => { const n = serial++; return { p: photos[n % photos.length]!, w: 240 + (Math.floor(n / photos.length) % 1200) }; };
  const targets = {
    sharp: (p: string, w: number, fmt: string) => `${sharpPeer.url}/resize/${p}?w=${w}&q=80&fmt=${fmt}`,
    origin: (p: string, w: number, fmt: string) => `${origin}/${fids.get(p)}?w=${w}&q=80&fmt=${fmt}`,
  };
  for (const fmt of ['jpeg', 'webp']) {
    const ops: Record<string, number[]> = { sharp: [], origin: [] };
    for (let r = 0; r <= runs; r++) {
      for (const [id, url] of Object.entries(targets)) {
        const res = checkLoad(await runLoad({ concurrency, durationS: r === 0 ? 1 : durationS, op: () => { const v = next(); return fetchBytes(url(v.p, v.w, fmt)); } }), `${fmt} ${id}`);
        if (r === 0) continue;
        ops[id]!.push(res.opsPerS);
        console.log(JSON.stringify({ bench: 'origin-resize', fmt, round: r, target: id, per_s: Number(res.opsPerS.toFixed(1)), p50_us: Math.round(res.p50), p99_us: Math.round(res.p99) }));
      }
    }
    const ratio = median(ops.origin!) / median(ops.sharp!);
    console.log(JSON.stringify({ bench: 'origin-resize', fmt, summary: true, sharp_per_s: Number(median(ops.sharp!).toFixed(1)), origin_per_s: Number(median(ops.origin!).toFixed(1)), ratio: Number(ratio.toFixed(3)), goal: '>= 0.9', met: ratio >= 0.9 }));
  }
  await sharpPeer.stop();
  await cluster.stop();
} finally {
  killAll();
  rmSync(work, { recursive: true, force: true });
}
