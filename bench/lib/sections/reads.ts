// Reads: the same files through nginx static, the bare Node ceiling, the bare fastify
// ceiling, a ugcfs data server, and the origin (cache hit, and cache miss of the original).
// Under --tls: nginx and every ugcfs role over HTTPS, without the bare peers (plain HTTP only).
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { Section, BenchContext } from '../context.ts';
import type { Goal } from '../results.ts';
import { SIZES, writeFiles } from '../dataset.ts';
import { startNginx } from '../nginx.ts';
import { startPeer, startUgcfs, type Child } from '../spawn.ts';
import { compareReads, rpsRatio, type Target, type TargetFigures } from '../compare.ts';
import { wrkCommand, WRK_THREADS, WRK_CONNECTIONS } from '../wrk.ts';
import { table, num, ratio, micros } from '../markdown.ts';
import { rolesAvailable, ORIGIN_WORKERS, startBenchCluster, clientWriter, SECRET, type BenchCluster } from '../cluster.ts';
import { DS_ROUTES, HEADERS } from '../../../src/wire/protocol.ts';

const FILES_PER_SIZE = 100;
/** the size the goals are read at */
const GOAL_BYTES = 20 * 1024;
/** the cache-miss origin: every cache off, so each read fetches the original */
const NO_CACHE = ['--memory-cache-bytes', '0', '--cache-bytes', '0'];

export const section: Section = {
  id: 'reads',
  title: 'Reads: data server and origin against nginx and the bare Node ceiling',
  tls: true,
  async run(ctx: BenchContext) {
    if (!ctx.tools.wrk) return { values: { notMeasured: 'wrk is missing (apt-get install wrk)' }, goals: [], commands: [], data: {} };
    const count = ctx.quick ? 30 : FILES_PER_SIZE;
    const dir = join(ctx.work, 'files');
    for (const s of SIZES) writeFiles(dir, s.bytes, count, `${s.bytes}-f`);
    const names = (bytes: number) => Array.from({ length: count }, (_, i) => `${bytes}-f${i}.bin`);

    const commands: string[] = [wrkCommand(ctx.durationS)];
    const stops: (() => Promise<void>)[] = [];
    const peers: { nginx?: string; node?: Child; nodeSync?: Child; fastify?: Child } = {};
    const tls = ctx.tls;
    const tlsArgs = tls?.args ?? [];
    try {
      if (ctx.tools.nginx) {
        const ng = await startNginx(ctx.tools, { dir: join(ctx.work, 'nginx'), staticRoot: dir, tls });
        stops.push(ng.stop);
        peers.nginx = ng.url;
        commands.push('nginx config:', ...ng.config.trimEnd().split('\n'));
      }
      if (!tls) {
        peers.node = await startPeer('bare-node', ['--dir', dir, '--pack', join(ctx.work, 'pack.bin')]);
        stops.push(() => peers.node!.stop());
        peers.nodeSync = await startPeer('bare-node', ['--dir', dir, '--pack', join(ctx.work, 'pack-sync.bin'), '--sync-reads']);
        stops.push(() => peers.nodeSync!.stop());
        peers.fastify = await startPeer('bare-fastify', ['--dir', dir]);
        stops.push(() => peers.fastify!.stop());
        commands.push('node bin/run-ts.mjs bench/peers/bare-node.ts --dir FILES --pack PACK', 'node bin/run-ts.mjs bench/peers/bare-node.ts --dir FILES --pack PACK2 --sync-reads', 'node bin/run-ts.mjs bench/peers/bare-fastify.ts --dir FILES');
      }

      // ugcfs: one data server (so every fid is on it), replicas 1, and two origins: one
      // with its caches on (hits) and one with every cache off (each read a miss).
      const roles = rolesAvailable();
      let cluster: BenchCluster | undefined;
      let missOrigin: Child | undefined;
      let poolOrigin: Child | undefined;
      const fids = new Map<string, string>();
      let ugcfsNote = '';
      if (roles.nameserver && roles.dataserver) {
        try {
          cluster = await startBenchCluster({ dir: join(ctx.work, 'cluster'), dataservers: 1, replicas: 1, origin: roles.origin }, tls);
          stops.unshift(() => cluster!.stop());
          commands.push(...cluster.commands);
          const w = await clientWriter(cluster.nameserver.url, { dispatcher: cluster.dispatcher });
          for (const s of SIZES) for (const n of names(s.bytes)) fids.set(n, await w.put(readFileSync(join(dir, n)), 'application/octet-stream'));
          await w.close?.();
          if (roles.origin) {
            const args = ['origin', '--nameserver', cluster.nameserver.url, '--port', '0', ...NO_CACHE, ...tlsArgs];
            missOrigin = await startUgcfs(args, { env: cluster.env });
            stops.unshift(() => missOrigin!.stop());
            commands.push(`ugcfs ${args.join(' ')}   (the cache-miss origin)`);
            // The caching origin again with a worker per core, as nginx runs (worker_processes auto).
            const poolArgs = ['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--workers', String(ORIGIN_WORKERS), ...tlsArgs];
            poolOrigin = await startUgcfs(poolArgs, { env: cluster.env });
            stops.unshift(() => poolOrigin!.stop());
            commands.push(`ugcfs ${poolArgs.join(' ')}`);
          }
        } catch (err) {
          ugcfsNote = `ugcfs could not be measured: ${(err as Error).message.split('\n')[0]}`;
          ctx.log(`  ${ugcfsNote}`);
          fids.clear();
        }
      } else {
        ugcfsNote = 'ugcfs data server / name server not built yet: their rows are not measured.';
      }

      const rows: (string | number)[][] = [];
      const goals: Goal[] = [];
      const data: Record<string, unknown> = {};
      for (const s of SIZES) {
        const ns = names(s.bytes);
        const targets: Target[] = [];
        if (peers.nginx) targets.push({ id: 'nginx', label: 'nginx static', url: peers.nginx, paths: ns.map((n) => `/static/${n}`) });
        if (peers.node) targets.push({ id: 'node', label: 'bare Node (positioned read)', url: peers.node.url, paths: ns.map((n) => `/static/${n}`) });
        if (peers.nodeSync) targets.push({ id: 'node-sync', label: 'bare Node (positioned read in place, synchronous)', url: peers.nodeSync.url, paths: ns.map((n) => `/static/${n}`) });
        if (peers.fastify) targets.push({ id: 'fastify', label: 'bare fastify (buffer in memory)', url: peers.fastify.url, paths: ns.map((n) => `/static/${n}`) });
        if (cluster && fids.size) {
          const dsPaths = ns.map((n) => DS_ROUTES.needle.replace(':fid', fids.get(n)!));
          targets.push({ id: 'ds', label: 'ugcfs data server, server checks every byte', url: cluster.dataservers[0]!.url, paths: dsPaths, headers: { 'x-ugcfs-secret': SECRET } });
          targets.push({ id: 'ds-client', label: 'ugcfs data server, client checks (as the cluster client reads)', url: cluster.dataservers[0]!.url, paths: dsPaths, headers: { 'x-ugcfs-secret': SECRET, [HEADERS.verify]: 'client' } });
          if (cluster.origin) targets.push({ id: 'hit', label: 'ugcfs origin, cache hit', url: cluster.origin.url, paths: ns.map((n) => `/${fids.get(n)}`) });
          if (poolOrigin) targets.push({ id: 'hit-workers', label: `ugcfs origin --workers ${ORIGIN_WORKERS}, cache hit`, url: poolOrigin.url, paths: ns.map((n) => `/${fids.get(n)}`) });
          if (missOrigin) targets.push({ id: 'miss', label: 'ugcfs origin, cache miss', url: missOrigin.url, paths: ns.map((n) => `/${fids.get(n)}`) });
        }
        ctx.log(` reads ${s.label}`);
        const figs = await compareReads(ctx, targets, { what: `reads ${s.label}` });
        data[s.label] = Object.fromEntries([...figs].map(([k, v]) => [k, { rps: v.rps, p50: v.p50, p99: v.p99, runs: v.runs.map((r) => r.rps) }]));
        for (const t of targets) {
          const f = figs.get(t.id)!;
          const r = row(s.label, f, rpsRatio(figs, t.id, 'nginx'), rpsRatio(figs, t.id, 'node'));
          rows.push(tls ? r.filter((_, i) => i !== NODE_COLUMN) : r);
        }
        // Over HTTPS the figures are reported, beside the plain run's goals.
        if (s.bytes === GOAL_BYTES && !tls) {
          // The goals are read on the route as ugcfs's own readers use it (the cluster client,
          // so the origin, the CLI and migration: they check every answer's CRC end to end);
          // the server-checked route, what curl gets, is reported beside them.
          const dsNode = rpsRatio(figs, 'ds-client', 'node');
          const dsNginx = rpsRatio(figs, 'ds-client', 'nginx');
          const hitNginx = rpsRatio(figs, 'hit', 'nginx');
          goals.push({ id: 'ds-node', name: `data-server ${s.label} reads vs bare Node ceiling, as the cluster client reads (it checks the CRC)`, target: '>= 0.9x', measured: ratio(dsNode), met: Number.isFinite(dsNode) ? dsNode >= 0.9 : undefined });
          goals.push({ id: 'ds-node-server-checks', name: `data-server ${s.label} reads vs bare Node ceiling, the server checking every byte`, target: 'reported', measured: ratio(rpsRatio(figs, 'ds', 'node')) });
          goals.push({ id: 'ds-node-sync', name: `data-server ${s.label} reads vs bare Node reading in place too (synchronous pread), as the cluster client reads`, target: 'reported', measured: ratio(rpsRatio(figs, 'ds-client', 'node-sync')) });
          goals.push({ id: 'ds-nginx', name: `data-server ${s.label} reads vs nginx static, as the cluster client reads`, target: '>= 0.35x', measured: ratio(dsNginx), met: Number.isFinite(dsNginx) ? dsNginx >= 0.35 : undefined });
          goals.push({ id: 'hit-nginx', name: `origin cache hits (${s.label} originals) vs nginx static`, target: '>= 0.45x', measured: ratio(hitNginx), met: Number.isFinite(hitNginx) ? hitNginx >= 0.45 : undefined });
          if (poolOrigin) goals.push({ id: 'hit-workers-nginx', name: `origin cache hits (${s.label} originals) vs nginx static, --workers ${ORIGIN_WORKERS} as nginx's ${ORIGIN_WORKERS}`, target: 'reported', measured: ratio(rpsRatio(figs, 'hit-workers', 'nginx')) });
        }
      }
      const values = {
        files: count,
        wrkThreads: WRK_THREADS,
        wrkConnections: WRK_CONNECTIONS,
        durationS: ctx.durationS,
        runs: ctx.runs,
        table: table(tls ? ['size', 'server', 'req/s', 'MB/s', 'p50', 'p99', 'vs nginx (HTTPS)', 'spread'] : ['size', 'server', 'req/s', 'MB/s', 'p50', 'p99', 'vs nginx', 'vs bare Node', 'spread'], rows),
        note: ugcfsNote,
        missFlags: NO_CACHE.join(' '),
        workers: ORIGIN_WORKERS,
        goalSize: SIZES.find((x) => x.bytes === GOAL_BYTES)!.label,
      };
      return { values, goals, commands, data };
    } finally {
      for (const s of stops) await s().catch(() => {});
    }
  },
};

/** the "vs bare Node" column of row(), left out over HTTPS (the bare peers serve plain HTTP only) */
const NODE_COLUMN = 7;

function row(size: string, f: TargetFigures, vsNginx: number, vsNode: number): (string | number)[] {
  if (f.error && f.runs.length === 0) return [size, f.label, `failed: ${f.error.slice(0, 80)}`, '', '', '', '', '', ''];
  return [size, f.label, num(f.rps), num(f.mbps, 1), micros(f.p50), micros(f.p99), ratio(vsNginx), ratio(vsNode), `${Math.round(f.spread * 100)}%`];
}
