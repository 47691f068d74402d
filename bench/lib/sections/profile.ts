// A short latency profile of the hot paths: where the CPU goes in a data-server read, an
// origin cache-hit read, and a replicated upload (primary and replica data servers, name
// server), from node --cpu-prof of the real server processes under load.
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Section, BenchContext } from '../context.ts';
import { runWrk } from '../wrk.ts';
import { runLoad } from '../load.ts';
import { table, num, micros } from '../markdown.ts';
import { summarizeProfiles, nowUs, type ProfileSummary } from '../cpu-profile.ts';
import { rolesAvailable, startCluster, clientWriter, SECRET } from '../cluster.ts';
import { DS_ROUTES, HEADERS } from '../../../src/wire/protocol.ts';

/** The data server read as the cluster client (so the origin) reads it: the client checks the CRC. */
const DS_READ_HEADERS = { 'x-ugcfs-secret': SECRET, [HEADERS.verify]: 'client' };
import { runCommand, startUgcfs, RUN_TS, ROOT } from '../spawn.ts';
import { parseExternalLines } from '../results.ts';

const SIZE = 20 * 1024;
/** the upload profile: replicated writes on this many data servers, this many at once */
const WRITE_DATASERVERS = 3;
const WRITE_REPLICAS = 2;
const WRITERS = 16;
/** every profiled load runs at least this long */
const MIN_DURATION_S = 3;

/** A profile's figures for the template: CPU sampled, and its heaviest components and functions. */
function profileValues(part: string, s: ProfileSummary | undefined): Record<string, string> {
  if (!s) return {};
  return {
    [`${part}.busy`]: num(s.busyMs),
    [`${part}.components`]: table(['component', 'self time', 'share'], s.components.slice(0, 8).map((c) => [c.component, `${num(c.selfMs)} ms`, `${(c.share * 100).toFixed(1)}%`])),
    [`${part}.functions`]: table(['function (self time)', 'component', 'share'], s.functions.slice(0, 10).map((f) => [f.name, f.component, `${(f.share * 100).toFixed(1)}%`])),
  };
}

/** Throughput and latency of the load a profile was taken under. */
function loadValues(part: string, rate: number, p50: number, p99: number): Record<string, string> {
  return { [`${part}.rate`]: num(rate), [`${part}.p50`]: micros(p50), [`${part}.p99`]: micros(p99) };
}

export const section: Section = {
  id: 'profile',
  title: 'Latency profile of the hot paths',
  async run(ctx: BenchContext) {
    const roles = rolesAvailable();
    if (!roles.nameserver || !roles.dataserver || !ctx.tools.wrk) {
      return { values: { notMeasured: 'needs the name server, the data server and wrk' }, goals: [], commands: [], data: {} };
    }
    const dur = Math.max(MIN_DURATION_S, ctx.durationS);
    const values: Record<string, string | number | boolean> = { durationS: dur, sizeKb: SIZE / 1024, dataservers: WRITE_DATASERVERS, replicas: WRITE_REPLICAS, writers: WRITERS, hasOrigin: roles.origin };
    const commands: string[] = [];
    const data: Record<string, unknown> = {};
    const body = randomBytes(SIZE);

    // Reads: one data server and one origin, both profiled, hit with 20 KB reads.
    {
      const dsProf = join(ctx.work, 'prof-ds-read');
      const orProf = join(ctx.work, 'prof-origin-hit');
      const missProf = join(ctx.work, 'prof-origin-miss');
      mkdirSync(dsProf);
      mkdirSync(orProf);
      mkdirSync(missProf);
      const cluster = await startCluster({
        dir: join(ctx.work, 'c1'), dataservers: 1, replicas: 1, origin: roles.origin,
        nodeFlags: { dataserver: ['--cpu-prof', '--cpu-prof-dir', dsProf], origin: ['--cpu-prof', '--cpu-prof-dir', orProf] },
      });
      commands.push('node --cpu-prof --cpu-prof-dir DIR bin/ugcfs.mjs dataserver ... (and origin), wrk as in the reads section');
      try {
        const w = await clientWriter(cluster.nameserver.url);
        const fids: string[] = [];
        for (let i = 0; i < 100; i++) fids.push(await w.put(randomBytes(SIZE), 'application/octet-stream'));
        await w.close?.();
        await runWrk({ wrk: ctx.tools.wrk, url: cluster.dataservers[0]!.url, paths: fids.map((f) => DS_ROUTES.needle.replace(':fid', f)), headers: DS_READ_HEADERS, durationS: 1 });
        const dsFrom = nowUs();
        const ds = await runWrk({ wrk: ctx.tools.wrk, url: cluster.dataservers[0]!.url, paths: fids.map((f) => DS_ROUTES.needle.replace(':fid', f)), headers: DS_READ_HEADERS, durationS: dur });
        const dsWindow = { fromUs: dsFrom, toUs: nowUs() };
        data.dsRead = { rps: ds.rps, p50: ds.p50, p99: ds.p99 };
        let hitWindow = { fromUs: 0, toUs: 0 };
        if (cluster.origin) {
          await runWrk({ wrk: ctx.tools.wrk, url: cluster.origin.url, paths: fids.map((f) => `/${f}`), durationS: 1 });
          const hitFrom = nowUs();
          const hit = await runWrk({ wrk: ctx.tools.wrk, url: cluster.origin.url, paths: fids.map((f) => `/${f}`), durationS: dur });
          hitWindow = { fromUs: hitFrom, toUs: nowUs() };
          data.originHit = { rps: hit.rps, p50: hit.p50, p99: hit.p99 };
          Object.assign(values, loadValues('originHit', hit.rps, hit.p50, hit.p99));
        }
        // A cold CDN pull: an origin with every cache off, so each read fetches the original.
        let missWindow = { fromUs: 0, toUs: 0 };
        if (cluster.origin) {
          const miss = await startUgcfs(['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--memory-cache-bytes', '0', '--cache-bytes', '0'], { env: cluster.env, nodeFlags: ['--cpu-prof', '--cpu-prof-dir', missProf] });
          await runWrk({ wrk: ctx.tools.wrk, url: miss.url, paths: fids.map((f) => `/${f}`), durationS: 1 });
          const from = nowUs();
          const mr = await runWrk({ wrk: ctx.tools.wrk, url: miss.url, paths: fids.map((f) => `/${f}`), durationS: dur });
          missWindow = { fromUs: from, toUs: nowUs() };
          Object.assign(values, loadValues('originMiss', mr.rps, mr.p50, mr.p99));
          data.originMiss = { rps: mr.rps, p50: mr.p50, p99: mr.p99 };
          await miss.stop();
        }
        await cluster.stop();
        const dsSum = summarizeProfiles(dsProf, dsWindow);
        Object.assign(values, loadValues('dsRead', ds.rps, ds.p50, ds.p99), profileValues('dsRead', dsSum));
        data.dsReadProfile = dsSum;
        if (cluster.origin) {
          const orSum = summarizeProfiles(orProf, hitWindow);
          Object.assign(values, profileValues('originHit', orSum));
          data.originHitProfile = orSum;
          const missSum = summarizeProfiles(missProf, missWindow);
          Object.assign(values, profileValues('originMiss', missSum));
          data.originMissProfile = missSum;
        }
      } finally {
        await cluster.stop().catch(() => {});
      }
    }

    // Uploads: 3 data servers and the name server profiled under replicated writes.
    {
      const dsProf = join(ctx.work, 'prof-ds-write');
      const nsProf = join(ctx.work, 'prof-ns-write');
      mkdirSync(dsProf);
      mkdirSync(nsProf);
      const cluster = await startCluster({
        dir: join(ctx.work, 'c2'), dataservers: WRITE_DATASERVERS, replicas: WRITE_REPLICAS,
        nodeFlags: { dataserver: ['--cpu-prof', '--cpu-prof-dir', dsProf], nameserver: ['--cpu-prof', '--cpu-prof-dir', nsProf] },
        dataserverArgs: ['--fsync=false'],
      });
      try {
        const w = await clientWriter(cluster.nameserver.url);
        await runLoad({ concurrency: WRITERS, durationS: 1, op: async () => { await w.put(body, 'application/octet-stream', WRITE_REPLICAS); return SIZE; } });
        const upFrom = nowUs();
        const res = await runLoad({ concurrency: WRITERS, durationS: dur, op: async () => { await w.put(body, 'application/octet-stream', WRITE_REPLICAS); return SIZE; } });
        await w.close?.();
        const upWindow = { fromUs: upFrom, toUs: nowUs() };
        data.upload = { opsPerS: res.opsPerS, p50: res.p50, p99: res.p99 };
        await cluster.stop();
        const s = summarizeProfiles(dsProf, upWindow);
        Object.assign(values, loadValues('upload', res.opsPerS, res.p50, res.p99), profileValues('upload', s));
        data.uploadProfile = s;
        const ns = summarizeProfiles(nsProf, upWindow);
        Object.assign(values, profileValues('assign', ns));
        data.assignProfile = ns;
      } finally {
        await cluster.stop().catch(() => {});
      }
    }

    // The two hops of a write timed apart: assign at the name server, PUT to the primary.
    const split: string[][] = [];
    for (const fsync of ['false', 'true']) {
      const r = await runCommand(process.execPath, [RUN_TS, join(ROOT, 'bench', 'profile-write-split.ts'), '--replicas', String(WRITE_REPLICAS), '--size', String(SIZE), '--fsync', fsync, '--count', ctx.quick ? '50' : '150'], { timeoutMs: 5 * 60_000 });
      for (const l of parseExternalLines(r.stdout)) split.push([`fsync ${fsync === 'true' ? 'on' : 'off'}`, l.metric.replace('writes/s at concurrency ', ''), num(l.value), String(l.assign), String(l.put)]);
      if (r.code !== 0) split.push([`fsync ${fsync === 'true' ? 'on' : 'off'}`, 'failed', r.stderr.trim().split('\n').pop() ?? '', '', '']);
    }
    commands.push(`node bin/run-ts.mjs bench/profile-write-split.ts --replicas ${WRITE_REPLICAS} --size ${SIZE} --fsync false|true`);
    data.writeSplit = split;
    values.splitTable = table(['', 'writers', 'writes/s', 'assign', 'PUT to primary (incl. forward)'], split);
    return { values, goals: [], commands, data };
  },
};
