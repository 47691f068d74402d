// Images: resize misses (every request a variant never asked for before) through the
// origin as it runs by default, sharp as a user runs it (bench/peers/sharp-defaults.ts) and
// nginx image_filter, JPEG and WebP out, on every image in test/fixtures/photos (JPEG, PNG,
// WebP); then cache hits of computed variants against nginx serving the same bytes statically.
import { extname, join } from 'node:path';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { Agent, request } from 'undici';
import sharp from 'sharp';
import type { Section, BenchContext } from '../context.ts';
import type { Goal } from '../results.ts';
import { startNginx } from '../nginx.ts';
import { CORPUS, ROOT, startPeer, startUgcfs, type Child } from '../spawn.ts';
import { processCpuMs } from '../process-cpu.ts';
import { addThreadKinds, threadKindsCpuMs, type ThreadKind } from './resize-threads.ts';
import { ORIGIN_OPTIONS } from '../../../origin/config.ts';
import { vipsThreadsPerResize } from '../../../origin/image-pipeline.ts';
import { runLoad, checkLoad, type LoadResult } from '../load.ts';
import { compareReads, rpsRatio, type Target } from '../compare.ts';
import { wrkCommand, WRK_THREADS, WRK_CONNECTIONS } from '../wrk.ts';
import { median, medianRatio, spread } from '../stats.ts';
import { table, num, ratio, micros } from '../markdown.ts';
import { rolesAvailable, ORIGIN_WORKERS, startCluster, originUpload, type Cluster } from '../cluster.ts';

// The section measures the resize pipeline: one client asking for a thousand widths is what
// the per-client miss limit and the per-file variant cap exist to refuse, so both are off.
const UNLIMITED = ['--variant-rate', '0', '--max-variants-per-file', '0'];

const PHOTOS = join(CORPUS, 'photos');
const MIME: Record<string, string> = { '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };
const RESIZE_JOBS = ORIGIN_OPTIONS.resizeConcurrency.default;
const QUALITY = 80;
const CONCURRENCY = 4;
/** miss widths run from MIN_WIDTH up to under the narrowest source, so nobody enlarges */
const MIN_WIDTH = 200;
/** the width of the variants whose cache hits are measured */
const HIT_WIDTH = 400;
const FORMATS = ['jpeg', 'webp'] as const;
const agent = new Agent({ connections: 64, keepAliveTimeout: 60_000 });

async function fetchBytes(url: string, mustMiss = false): Promise<number> {
  const res = await request(url, { dispatcher: agent });
  const body = Buffer.from(await res.body.arrayBuffer());
  if (res.statusCode !== 200) throw new Error(`${url} -> HTTP ${res.statusCode}: ${body.toString('utf8', 0, 200)}`);
  if (mustMiss && res.headers['x-cache'] !== 'MISS') throw new Error(`${url} answered X-Cache: ${String(res.headers['x-cache'])}, not a miss`);
  return body.length;
}

interface MissTarget {
  id: string;
  label: string;
  /** the serving process, whose CPU per resize is shown */
  pid?: number;
  /** the URL of a never-seen variant: the n-th distinct width of photo p */
  url: (photo: string, w: number) => string;
  /** the sources it is asked for (nginx image_filter: the JPEGs, its output being its input's format) */
  sources: string[];
  /** the origin: every answer must be a miss */
  miss?: boolean;
}

export const section: Section = {
  id: 'images',
  title: "Images: resize misses against sharp's defaults and nginx image_filter, cache hits against nginx",
  async run(ctx: BenchContext) {
    const photos = readdirSync(PHOTOS).filter((f) => MIME[extname(f)] !== undefined).sort();
    const jpegs = photos.filter((f) => f.endsWith('.jpg'));
    const widths = await Promise.all(photos.map(async (p) => (await sharp(join(PHOTOS, p)).metadata()).width ?? 0));
    const widthSpan = Math.min(...widths) - MIN_WIDTH;
    const commands: string[] = [wrkCommand(ctx.durationS)];
    const stops: (() => Promise<void>)[] = [];
    const goals: Goal[] = [];
    const data: Record<string, unknown> = {};
    const notes: string[] = [];
    try {
      const sharpPeer: Child = await startPeer('sharp-defaults', ['--dir', PHOTOS]);
      stops.push(() => sharpPeer.stop());
      commands.push('node bin/run-ts.mjs bench/peers/sharp-defaults.ts --dir PHOTOS');
      const staticDir = join(ctx.work, 'variants');
      mkdirSync(staticDir, { recursive: true });
      let nginxUrl: string | undefined;
      if (ctx.tools.nginx) {
        const ng = await startNginx(ctx.tools, { dir: join(ctx.work, 'nginx'), staticRoot: staticDir, resizeRoot: ctx.tools.imageFilterModule ? PHOTOS : undefined, jpegQuality: QUALITY });
        stops.push(ng.stop);
        nginxUrl = ng.url;
        // The photos' path is printed relative to the repository, as a reader's clone has it.
        commands.push('nginx config:', ...ng.config.replaceAll(`${ROOT}/`, '').trimEnd().split('\n'));
      }
      if (!ctx.tools.imageFilterModule) notes.push('nginx image_filter is not installed (apt-get install libnginx-mod-http-image-filter): its rows are skipped.');

      let cluster: Cluster | undefined;
      const fids = new Map<string, string>();
      const roles = rolesAvailable();
      if (roles.nameserver && roles.dataserver && roles.origin) {
        try {
          // The origin's defaults (no --cache-dir: the memory tier only), the two limits aside.
          cluster = await startCluster({ dir: join(ctx.work, 'cluster'), dataservers: 1, replicas: 1, origin: true, originArgs: UNLIMITED });
          stops.unshift(() => cluster!.stop());
          commands.push(...cluster.commands);
          for (const p of photos) fids.set(p, await originUpload(cluster.origin!.url, readFileSync(join(PHOTOS, p)), MIME[extname(p)]!));
        } catch (err) {
          notes.push(`ugcfs origin could not be measured: ${(err as Error).message.split('\n')[0]}`);
          cluster = undefined;
        }
      } else {
        notes.push('ugcfs origin not built yet: its rows are not measured.');
      }

      // Resize misses. Per target and format a counter walks (photo, width) pairs, sources
      // in turn and widths upwards, so no target is asked the same variant twice: every
      // origin request is a true miss (checked: X-Cache).
      const missRows: (string | number)[][] = [];
      const threadRows: (string | number)[][] = [];
      for (const fmt of FORMATS) {
        const targets: MissTarget[] = [{ id: 'sharp', label: 'sharp, its defaults', pid: sharpPeer.pid, sources: photos, url: (p, w) => `${sharpPeer.url}/resize/${p}?w=${w}&q=${QUALITY}&fmt=${fmt}` }];
        if (cluster) targets.push({ id: 'origin', label: 'ugcfs origin (miss)', pid: cluster.origin!.pid, sources: photos, miss: true, url: (p, w) => `${cluster!.origin!.url}/${fids.get(p)}?w=${w}&q=${QUALITY}&fmt=${fmt}` });
        if (nginxUrl && ctx.tools.imageFilterModule && fmt === 'jpeg') targets.push({ id: 'nginx', label: 'nginx image_filter (the JPEGs)', sources: jpegs, url: (p, w) => `${nginxUrl}/resize/${p}?w=${w}` });
        const serials = new Map<string, number>(targets.map((t) => [t.id, 0]));
        const nextVariant = (t: MissTarget) => {
          const n = serials.get(t.id)!;
          serials.set(t.id, n + 1);
          if (n >= t.sources.length * widthSpan) throw new Error('ran out of distinct variants: lower --duration or --runs');
          return { photo: t.sources[n % t.sources.length]!, w: MIN_WIDTH + Math.floor(n / t.sources.length) };
        };
        const runs = new Map<string, LoadResult[]>(targets.map((t) => [t.id, []]));
        const cpu = new Map<string, number[]>(targets.map((t) => [t.id, []]));
        const errors = new Map<string, string>();
        const kinds = new Map<string, Record<ThreadKind, number>>(targets.map((t) => [t.id, { main: 0, libvips: 0, other: 0 }]));
        for (let r = 0; r < ctx.runs + 1; r++) {
          // Every other round in reverse order, so no side always runs right after another.
          for (const t of r % 2 === 1 ? [...targets].reverse() : targets) {
            if (errors.has(t.id)) continue;
            try {
              const c0 = t.pid ? processCpuMs(t.pid) : Number.NaN;
              const k0 = t.pid ? threadKindsCpuMs(t.pid) : undefined;
              // round 0 is a short warm-up (sharp's thread pool, JIT, the origin's copy of the originals)
              const res = checkLoad(await runLoad({ concurrency: CONCURRENCY, durationS: r === 0 ? 1 : ctx.durationS, op: () => { const v = nextVariant(t); return fetchBytes(t.url(v.photo, v.w), t.miss); } }), `${fmt} ${t.label}`);
              if (r > 0) runs.get(t.id)!.push(res);
              if (r > 0 && t.pid) cpu.get(t.id)!.push((processCpuMs(t.pid) - c0) / Math.max(1, res.ops));
              if (r > 0 && t.pid) addThreadKinds(kinds.get(t.id)!, k0!, threadKindsCpuMs(t.pid));
              if (r > 0) ctx.log(`  resize ${fmt} ${t.label} round ${r}: ${res.opsPerS.toFixed(1)}/s`);
            } catch (err) {
              errors.set(t.id, (err as Error).message);
              ctx.log(`  resize ${fmt} ${t.label}: ${(err as Error).message}`);
            }
          }
        }
        const sharpRuns = runs.get('sharp')!;
        for (const t of targets) {
          const rs = runs.get(t.id)!;
          if (rs.length === 0) { missRows.push([fmt, t.label, `failed: ${(errors.get(t.id) ?? '').slice(0, 100)}`, '', '', '', '', '']); continue; }
          const vs = medianRatio(rs.map((x) => x.opsPerS), sharpRuns.map((x) => x.opsPerS));
          const cpuMs = median(cpu.get(t.id)!);
          const cpuRatio = cpuMs / median(cpu.get('sharp')!);
          const k = kinds.get(t.id)!;
          const done = rs.reduce((a, x) => a + x.ops, 0);
          if (t.pid) threadRows.push([fmt, t.label, num(k.main / done, 2), num(k.libvips / done, 1), num(k.other / done, 1)]);
          missRows.push([fmt, t.label, num(median(rs.map((x) => x.opsPerS)), 1), Number.isFinite(cpuMs) ? num(cpuMs, 1) : '—', Number.isFinite(cpuRatio) ? ratio(cpuRatio) : '—', micros(median(rs.map((x) => x.p50))), micros(median(rs.map((x) => x.p99))), ratio(vs), `${Math.round(spread(rs.map((x) => x.opsPerS)) * 100)}%`]);
          if (t.id === 'origin') goals.push({ id: `miss-${fmt}`, name: `resize misses (${fmt} out) vs sharp with its defaults`, target: '>= 0.9x', measured: ratio(vs), met: vs >= 0.9 });
        }
        if (!cluster) goals.push({ id: `miss-${fmt}`, name: `resize misses (${fmt} out) vs sharp with its defaults`, target: '>= 0.9x', measured: '—' });
        data[`miss-${fmt}`] = Object.fromEntries([...runs].map(([k, v]) => [k, v.map((x) => x.opsPerS)]));
        data[`miss-${fmt}-cpu-ms`] = Object.fromEntries(cpu);
      }

      // Cache hits: the same computed variants through the origin and from nginx static.
      const hitRows: (string | number)[][] = [];
      if (ctx.tools.wrk && nginxUrl) {
        const hitTargets: Target[] = [];
        const variants: { name: string; origin?: string }[] = [];
        for (const p of jpegs) {
          for (const fmt of FORMATS) {
            const name = `${p}_${HIT_WIDTH}.${fmt}`;
            if (cluster) {
              const path = `/${fids.get(p)}?w=${HIT_WIDTH}&q=${QUALITY}&fmt=${fmt}`;
              const res = await request(cluster.origin!.url + path, { dispatcher: agent });
              writeFileSync(join(staticDir, name), Buffer.from(await res.body.arrayBuffer()));
              variants.push({ name, origin: path });
            } else {
              const res = await request(`${sharpPeer.url}/resize/${p}?w=${HIT_WIDTH}&q=${QUALITY}&fmt=${fmt}`, { dispatcher: agent });
              writeFileSync(join(staticDir, name), Buffer.from(await res.body.arrayBuffer()));
              variants.push({ name });
            }
          }
        }
        hitTargets.push({ id: 'nginx', label: 'nginx static (same variant bytes)', url: nginxUrl, paths: variants.map((v) => `/static/${v.name}`) });
        if (cluster) hitTargets.push({ id: 'hit', label: 'ugcfs origin (variant cache hit)', url: cluster.origin!.url, paths: variants.map((v) => v.origin!) });
        if (cluster) {
          // The same origin with a worker per core, as nginx runs (worker_processes auto).
          const args = ['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--workers', String(ORIGIN_WORKERS), '--cache-dir', join(ctx.work, 'cache-workers'), ...UNLIMITED];
          const pool = await startUgcfs(args, { env: cluster.env });
          stops.unshift(() => pool.stop());
          commands.push(`ugcfs ${args.join(' ')}`);
          hitTargets.push({ id: 'hit-workers', label: `ugcfs origin --workers ${ORIGIN_WORKERS} (variant cache hit)`, url: pool.url, paths: variants.map((v) => v.origin!) });
        }
        const figs = await compareReads(ctx, hitTargets, { what: 'variant hits' });
        for (const t of hitTargets) {
          const f = figs.get(t.id)!;
          if (t.id === 'hit-workers') {
            const vs = rpsRatio(figs, t.id, 'nginx');
            goals.push({ id: 'variant-hit-workers', name: `origin variant cache hits vs nginx static (same bytes), --workers ${ORIGIN_WORKERS} as nginx's ${ORIGIN_WORKERS}`, target: '>= 0.45x', measured: ratio(vs), met: Number.isFinite(vs) ? vs >= 0.45 : undefined });
          }
          if (t.id === 'hit') goals.push({ id: 'variant-hit', name: 'origin variant cache hits vs nginx static (same bytes), one origin process', target: 'reported', measured: ratio(rpsRatio(figs, t.id, 'nginx')) });
          hitRows.push([t.label, f.runs.length ? num(f.rps) : `failed: ${(f.error ?? '').slice(0, 80)}`, micros(f.p50), micros(f.p99), ratio(rpsRatio(figs, t.id, 'nginx')), `${Math.round(f.spread * 100)}%`]);
        }
        data.hits = Object.fromEntries([...figs].map(([k, v]) => [k, v.runs.map((x) => x.rps)]));
      }

      const values = {
        photos: photos.length,
        jpegs: jpegs.length,
        photoWidths: `${Math.min(...widths)}–${Math.max(...widths)}`,
        concurrency: CONCURRENCY,
        minWidth: MIN_WIDTH,
        maxWidth: MIN_WIDTH + widthSpan - 1,
        maxPixelsM: ORIGIN_OPTIONS.maxPixels.default / 1e6,
        quality: QUALITY,
        durationS: ctx.durationS,
        runs: ctx.runs,
        resizeJobs: RESIZE_JOBS,
        vipsThreads: vipsThreadsPerResize(RESIZE_JOBS),
        threadTable: table(['out', 'server', 'main thread', 'libvips threads', 'other threads'], threadRows),
        missTable: table(['out', 'server', 'resizes/s', 'CPU/resize (ms)', 'CPU vs sharp', 'p50', 'p99', 'resizes/s vs sharp', 'spread'], missRows),
        hitTable: hitRows.length ? table(['server', 'req/s', 'p50', 'p99', 'vs nginx', 'spread'], hitRows) : '',
        variants: jpegs.length * FORMATS.length,
        hitWidth: HIT_WIDTH,
        wrkThreads: WRK_THREADS,
        wrkConnections: WRK_CONNECTIONS,
        workers: ORIGIN_WORKERS,
        notes: notes.join('\n'),
      };
      return { values, goals, commands, data };
    } finally {
      for (const s of stops) await s().catch(() => {});
    }
  },
};
