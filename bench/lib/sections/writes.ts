// Writes: replicated 20 KB writes (replicas 1, 2, 3; fsync on and off) through the cluster
// client, against nginx WebDAV PUT of the same bytes, by the same Node client. Under --tls:
// nginx and every ugcfs role over HTTPS, fsync off only (TLS costs CPU, fsync waits on the disk).
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import sharp from 'sharp';
import { CORPUS, startUgcfs, type Child } from '../spawn.ts';
import type { Section, BenchContext } from '../context.ts';
import type { Goal } from '../results.ts';
import { startNginx } from '../nginx.ts';
import { runLoad, checkLoad, type LoadResult } from '../load.ts';
import { median, medianRatio, spread } from '../stats.ts';
import { table, num, ratio, micros } from '../markdown.ts';
import { rolesAvailable, ORIGIN_WORKERS, startBenchCluster, clientWriter, protocolWriter, originUpload, type Writer } from '../cluster.ts';

// The section measures the upload path at full speed from one client; the per-token upload
// rate (--upload-rate, 50/s by default) would measure the limit instead, so it is off.
const UNLIMITED_UPLOADS = ['--upload-rate', '0'];

const SIZE = 20 * 1024;
const CONCURRENCY = 16;
const WARMUP_S = 1;
const DATASERVERS = 3;
const REPLICAS = [1, 2, 3];
/** the replica count the goal is read at */
const GOAL_REPLICAS = 2;
const agent = new Agent({ connections: 64, keepAliveTimeout: 60_000 });

/** The goal: replicated writes at GOAL_REPLICAS, fsync off, against nginx's single-copy PUT. */
const goal = (measured: string, met: boolean | undefined): Goal => ({ id: 'replicated-nginx', name: `replicated writes (replicas ${GOAL_REPLICAS}, fsync off) vs nginx WebDAV PUT`, target: '>= 0.5x', measured, met });

export const section: Section = {
  id: 'writes',
  title: 'Writes: replicated uploads against nginx WebDAV PUT',
  tls: true,
  async run(ctx: BenchContext) {
    const tls = ctx.tls;
    const tlsArgs = tls?.args ?? [];
    const dispatcher = tls?.dispatcher ?? agent;
    const body = randomBytes(SIZE);
    // The origin takes images only (types are sniffed): a fixture photo re-encoded to about
    // the same size stands in for the random bytes there.
    const jpeg = await sharp(join(CORPUS, 'photos', 'Garden.jpg')).resize({ width: 640 }).jpeg({ quality: 75 }).toBuffer();
    const commands: string[] = [];
    const stops: (() => Promise<void>)[] = [];
    const notes: string[] = [];
    const rows: (string | number)[][] = [];
    const goals: Goal[] = [];
    const data: Record<string, unknown> = {};
    try {
      let davUrl: string | undefined;
      if (ctx.tools.nginx && ctx.tools.dav) {
        const ng = await startNginx(ctx.tools, { dir: join(ctx.work, 'nginx'), davRoot: join(ctx.work, 'dav'), tls });
        stops.push(ng.stop);
        davUrl = ng.url;
        commands.push('nginx config:', ...ng.config.trimEnd().split('\n'));
      } else {
        notes.push('nginx with the dav module is missing: the WebDAV PUT comparison is skipped.');
      }
      let davSerial = 0;
      const davPut = async () => {
        const n = davSerial++;
        // Every PUT makes a new file, as every ugcfs write does. Replacing an existing file
        // is not the same work: ext4 starts writeback of the new data when a rename replaces
        // a file (auto_da_alloc), which cost nginx about 40 % more CPU per PUT here (measured
        // 101-105 against 73-76 us). The files go with the bench's work directory.
        const res = await request(`${davUrl}/dav/${n % 100}/${n}.bin`, { method: 'PUT', body, dispatcher });
        await res.body.dump();
        if (res.statusCode !== 201 && res.statusCode !== 204) throw new Error(`nginx PUT -> HTTP ${res.statusCode}`);
        return SIZE;
      };
      const roles = rolesAvailable();
      if (!roles.nameserver || !roles.dataserver) notes.push('ugcfs name server / data server not built yet: their rows are not measured.');
      for (const fsync of tls ? [false] : [false, true]) {
        if (!roles.nameserver || !roles.dataserver) break;
        const cluster = await startBenchCluster({ dir: join(ctx.work, `cluster-${fsync}`), dataservers: DATASERVERS, replicas: GOAL_REPLICAS, origin: roles.origin, originArgs: UNLIMITED_UPLOADS, dataserverArgs: [`--fsync=${fsync}`] }, tls);
        commands.push(...cluster.commands);
        let pool: Child | undefined;
        try {
          const writer: Writer = await clientWriter(cluster.nameserver.url, { dispatcher: cluster.dispatcher }).catch(() => protocolWriter(cluster.nameserver.url, cluster.dispatcher));
          const kinds: { id: string; label: string; op: () => Promise<number> }[] = [];
          if (davUrl) kinds.push({ id: 'nginx', label: 'nginx WebDAV PUT (1 copy, no fsync)', op: davPut });
          for (const r of REPLICAS) kinds.push({ id: `r${r}`, label: `ugcfs replicas ${r}, fsync ${fsync ? 'on' : 'off'} (${writer.how})`, op: async () => { await writer.put(body, 'application/octet-stream', r); return SIZE; } });
          // The same client with write coalescing off: what the goal row would be without batches.
          const single = await clientWriter(cluster.nameserver.url, { writeBatch: 1, dispatcher: cluster.dispatcher }).catch(() => undefined);
          if (single) kinds.push({ id: `r${GOAL_REPLICAS}-put`, label: `ugcfs replicas ${GOAL_REPLICAS}, fsync ${fsync ? 'on' : 'off'} (${single.how})`, op: async () => { await single.put(body, 'application/octet-stream', GOAL_REPLICAS); return SIZE; } });
          if (cluster.origin) kinds.push({ id: 'upload', label: `ugcfs origin POST /upload of a ${Math.round(jpeg.length / 1024)} KB JPEG (replicas ${GOAL_REPLICAS}, fsync ${fsync ? 'on' : 'off'})`, op: async () => { await originUpload(cluster.origin!.url, jpeg, 'image/jpeg', cluster.dispatcher); return jpeg.length; } });
          if (cluster.origin && !fsync) {
            // Uploads through an origin with a worker per core (one table row is enough).
            const args = ['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--workers', String(ORIGIN_WORKERS), ...UNLIMITED_UPLOADS, ...tlsArgs];
            pool = await startUgcfs(args, { env: cluster.env });
            commands.push(`ugcfs ${args.join(' ')}`);
            const url = pool.url;
            kinds.push({ id: 'upload-workers', label: `ugcfs origin --workers ${ORIGIN_WORKERS} POST /upload of a ${Math.round(jpeg.length / 1024)} KB JPEG (replicas ${GOAL_REPLICAS}, fsync off)`, op: async () => { await originUpload(url, jpeg, 'image/jpeg', cluster.dispatcher); return jpeg.length; } });
          }
          const runs = new Map<string, LoadResult[]>(kinds.map((k) => [k.id, []]));
          const errors = new Map<string, string>();
          for (let round = 0; round <= ctx.runs; round++) {
            for (const k of kinds) {
              if (errors.has(k.id)) continue;
              try {
                const raw = await runLoad({ concurrency: CONCURRENCY, durationS: round === 0 ? WARMUP_S : ctx.durationS, op: k.op });
                // Warm-up failures are reported, not fatal: they show what a cold cluster does
                // (e.g. the first writes into a freshly allocated block).
                if (round === 0) {
                  if (raw.errors) notes.push(`Warm-up of "${k.label}": ${raw.errors} of ${raw.ops + raw.errors} writes failed (first: ${raw.firstError?.slice(0, 160)}).`);
                  continue;
                }
                const res = checkLoad(raw, k.label);
                runs.get(k.id)!.push(res);
                ctx.log(`  writes ${k.label} round ${round}: ${Math.round(res.opsPerS)}/s`);
              } catch (err) {
                errors.set(k.id, (err as Error).message);
                ctx.log(`  writes ${k.label}: ${(err as Error).message}`);
              }
            }
          }
          const base = runs.get('nginx') ?? [];
          for (const k of kinds) {
            if (k.id === 'nginx' && fsync) continue; // one nginx row per table is enough; both rounds' nginx runs stay in data
            const rs = runs.get(k.id)!;
            if (rs.length === 0) { rows.push([k.label, `failed: ${(errors.get(k.id) ?? '').slice(0, 100)}`, '', '', '', '', '']); continue; }
            const vs = medianRatio(rs.map((x) => x.opsPerS), base.map((x) => x.opsPerS));
            rows.push([k.label, num(median(rs.map((x) => x.opsPerS))), num(median(rs.map((x) => x.bytesPerS)) / 2 ** 20, 1), micros(median(rs.map((x) => x.p50))), micros(median(rs.map((x) => x.p99))), ratio(vs), `${Math.round(spread(rs.map((x) => x.opsPerS)) * 100)}%`]);
            // Over HTTPS the figures are reported, beside the plain run's goals.
            if (tls) continue;
            if (k.id === `r${GOAL_REPLICAS}` && !fsync) goals.push(goal(ratio(vs), Number.isFinite(vs) ? vs >= 0.5 : undefined));
            if (k.id === `r${GOAL_REPLICAS}` && fsync) goals.push({ id: 'replicated-fsync-nginx', name: `replicated writes (replicas ${GOAL_REPLICAS}, fsync on) vs nginx WebDAV PUT (no fsync)`, target: 'reported (issue 3)', measured: ratio(vs) });
          }
          data[`fsync-${fsync ? 'on' : 'off'}`] = Object.fromEntries([...runs].map(([k, v]) => [k, v.map((x) => x.opsPerS)]));
          await writer.close?.();
          await single?.close?.();
        } finally {
          await pool?.stop().catch(() => {});
          await cluster.stop().catch(() => {});
        }
      }
      if (!rows.length && davUrl) {
        // nothing of ugcfs to compare with yet: still show the peer's figure
        const rs: LoadResult[] = [];
        for (let r = 0; r < ctx.runs; r++) rs.push(checkLoad(await runLoad({ concurrency: CONCURRENCY, durationS: ctx.durationS, op: davPut }), 'nginx PUT'));
        rows.push(['nginx WebDAV PUT (1 copy, no fsync)', num(median(rs.map((x) => x.opsPerS))), num(median(rs.map((x) => x.bytesPerS)) / 2 ** 20, 1), micros(median(rs.map((x) => x.p50))), micros(median(rs.map((x) => x.p99))), '1.00x', `${Math.round(spread(rs.map((x) => x.opsPerS)) * 100)}%`]);
      }
      if (!tls && !goals.some((g) => g.id === 'replicated-nginx')) goals.push(goal('—', undefined));
      const values = {
        sizeKb: SIZE / 1024,
        concurrency: CONCURRENCY,
        durationS: ctx.durationS,
        runs: ctx.runs,
        warmupS: WARMUP_S,
        dataservers: DATASERVERS,
        goalReplicas: GOAL_REPLICAS,
        replicaList: REPLICAS.join('/'),
        table: table(['writer', 'writes/s', 'MB/s', 'p50', 'p99', tls ? 'vs nginx PUT (HTTPS)' : 'vs nginx PUT', 'spread'], rows),
        notes: notes.join('\n'),
      };
      return { values, goals, commands, data };
    } finally {
      for (const s of stops) await s().catch(() => {});
    }
  },
};
