// Origin memory after 10,000 distinct variants: resident set size and cache occupancy
// before and after, with the memory tier bounded by --memory-cache-bytes (default 128 MiB,
// and a 16 MiB run to show the bound holds). JSON lines.
// Run: node bin/run-ts.mjs bench/origin-memory.ts [--quick] [--variants N]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Agent, request } from 'undici';
import { startCluster, originUpload } from './lib/cluster.ts';
import { runLoad, checkLoad } from './lib/load.ts';
import { CORPUS, killAll } from './lib/spawn.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { variants } = parseFlags(import.meta.url, {
  quick: opt.bool(false, "accepted, as the bench's external section passes it to every script; this one has no shorter form"),
  variants: opt.int(10_000, 'distinct variants requested per memory-cache size', { min: 1 }),
});
const agent = new Agent({ connections: 16 });

async function get(url: string): Promise<Buffer> {
  const res = await request(url, { dispatcher: agent });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`${url} -> HTTP ${res.statusCode}`);
  return body;
}

async function rss(origin: string): Promise<number> {
  const text = (await get(`${origin}/metrics`)).toString('utf8');
  const line = text.split('\n').find((l) => !l.startsWith('#') && l.includes('resident_memory_bytes'));
  return Number(line?.split(' ').pop() ?? NaN);
}

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-mem-'));
try {
  // A storefront-sized source keeps 10,000 resizes to a couple of minutes on 2 cores.
  const source = await sharp(readFileSync(join(CORPUS, 'photos', 'Aqua.jpg'))).resize({ width: 800 }).jpeg({ quality: 85 }).toBuffer();
  for (const memoryCache of ['128M', '16M']) {
    const cluster = await startCluster({ dir: join(work, `cluster-${memoryCache}`), dataservers: 1, replicas: 1, origin: true, originArgs: ['--memory-cache-bytes', memoryCache, '--variant-rate', '0', '--max-variants-per-file', '0'], env: process.env.MALLOC_ARENA_MAX ? { MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX } : {} });
    const origin = cluster.origin!.url;
    const fid = await originUpload(origin, source, 'image/jpeg');
    await get(`${origin}/${fid}?w=100`);
    const before = await rss(origin);
    const started = Date.now();
    // Distinct (w, h, format) triples: 16..815 wide, 16..27 high boxes, jpeg or webp.
    const res = checkLoad(await runLoad({ concurrency: 4, durationS: 3600, maxOps: variants, op: async (i) => (await get(`${origin}/${fid}?w=${16 + (i % 800)}&h=${16 + Math.floor(i / 800)}&fit=cover&fmt=${i % 2 ? 'webp' : 'jpeg'}`)).length }), 'variants');
    const health = JSON.parse((await get(`${origin}/healthz`)).toString('utf8')) as { memoryCacheBytes: number; memoryCacheEntries: number };
    const after = await rss(origin);
    console.log(JSON.stringify({
      bench: 'origin-memory', variants: res.ops, memory_cache_limit: memoryCache, seconds: Math.round((Date.now() - started) / 1000),
      rss_before_mb: Math.round(before / 2 ** 20), rss_after_mb: Math.round(after / 2 ** 20),
      memory_cache_mb: Number((health.memoryCacheBytes / 2 ** 20).toFixed(1)), memory_cache_entries: health.memoryCacheEntries,
    }));
    await cluster.stop();
  }
} finally {
  killAll();
  rmSync(work, { recursive: true, force: true });
}
