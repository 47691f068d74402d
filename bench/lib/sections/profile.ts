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
import { DS_ROUTES } from '../../../src/protocol.ts';
import { runCommand, startUgcfs, RUN_TS, ROOT } from '../spawn.ts';
import { parseExternalLines } from '../results.ts';

const SIZE = 20 * 1024;

function render(title: string, s: ProfileSummary | undefined, load: string): string {
  if (!s) return `### ${title}\n\nNo profile was written.\n`;
  return [
    `### ${title}`,
    '',
    `${load}; ${num(s.busyMs)} ms of CPU sampled (idle excluded).`,
    '',
    table(['component', 'self time', 'share'], s.components.slice(0, 8).map((c) => [c.component, `${num(c.selfMs)} ms`, `${(c.share * 100).toFixed(1)}%`])),
    '',
    table(['function (self time)', 'component', 'share'], s.functions.slice(0, 10).map((f) => [f.name, f.component, `${(f.share * 100).toFixed(1)}%`])),
    '',
  ].join('\n');
}

export const section: Section = {
  id: 'profile',
  title: 'Latency profile of the hot paths',
  async run(ctx: BenchContext) {
    const roles = rolesAvailable();
    if (!roles.nameserver || !roles.dataserver || !ctx.tools.wrk) {
      return { markdown: 'Not measured: needs the name server, the data server and wrk.', goals: [], commands: [], data: {} };
    }
    const dur = Math.max(3, ctx.durationS);
    const parts: string[] = [];
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
        dataserverNodeFlags: ['--cpu-prof', '--cpu-prof-dir', dsProf],
        originNodeFlags: ['--cpu-prof', '--cpu-prof-dir', orProf],
      });
      commands.push('node --cpu-prof --cpu-prof-dir DIR bin/ugcfs.mjs dataserver ... (and origin), wrk as in the reads section');
      try {
        const w = await clientWriter(cluster.nameserver.url);
        const fids: string[] = [];
        for (let i = 0; i < 100; i++) fids.push(await w.put(randomBytes(SIZE), 'application/octet-stream'));
        await w.close?.();
        await runWrk({ wrk: ctx.tools.wrk, url: cluster.dataservers[0]!.url, paths: fids.map((f) => DS_ROUTES.needle.replace(':fid', f)), headers: { 'x-ugcfs-secret': SECRET }, durationS: 1 });
        const dsFrom = nowUs();
        const ds = await runWrk({ wrk: ctx.tools.wrk, url: cluster.dataservers[0]!.url, paths: fids.map((f) => DS_ROUTES.needle.replace(':fid', f)), headers: { 'x-ugcfs-secret': SECRET }, durationS: dur });
        const dsWindow = { fromUs: dsFrom, toUs: nowUs() };
        data.dsRead = { rps: ds.rps, p50: ds.p50, p99: ds.p99 };
        let hitLine = '';
        let hitWindow = { fromUs: 0, toUs: 0 };
        if (cluster.origin) {
          await runWrk({ wrk: ctx.tools.wrk, url: cluster.origin.url, paths: fids.map((f) => `/${f}`), durationS: 1 });
          const hitFrom = nowUs();
          const hit = await runWrk({ wrk: ctx.tools.wrk, url: cluster.origin.url, paths: fids.map((f) => `/${f}`), durationS: dur });
          hitWindow = { fromUs: hitFrom, toUs: nowUs() };
          data.originHit = { rps: hit.rps, p50: hit.p50, p99: hit.p99 };
          hitLine = `wrk ${dur} s of 20 KB origin cache hits: ${num(hit.rps)} req/s, p50 ${micros(hit.p50)}, p99 ${micros(hit.p99)}`;
        }
        // A cold CDN pull: an origin with every cache off, so each read fetches the original.
        let missLine = '';
        let missWindow = { fromUs: 0, toUs: 0 };
        if (cluster.origin) {
          const miss = await startUgcfs(['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--memory-cache-bytes', '0', '--cache-bytes', '0'], { env: cluster.env, nodeFlags: ['--cpu-prof', '--cpu-prof-dir', missProf] });
          await runWrk({ wrk: ctx.tools.wrk, url: miss.url, paths: fids.map((f) => `/${f}`), durationS: 1 });
          const from = nowUs();
          const mr = await runWrk({ wrk: ctx.tools.wrk, url: miss.url, paths: fids.map((f) => `/${f}`), durationS: dur });
          missWindow = { fromUs: from, toUs: nowUs() };
          missLine = `wrk ${dur} s of 20 KB originals through an origin with its caches off: ${num(mr.rps)} req/s, p50 ${micros(mr.p50)}, p99 ${micros(mr.p99)}`;
          data.originMiss = { rps: mr.rps, p50: mr.p50, p99: mr.p99 };
          await miss.stop();
        }
        await cluster.stop();
        const dsSum = summarizeProfiles(dsProf, dsWindow);
        parts.push(render('Data-server read (20 KB)', dsSum, `wrk ${dur} s of 20 KB reads on the data server's needle route: ${num(ds.rps)} req/s, p50 ${micros(ds.p50)}, p99 ${micros(ds.p99)} (profiling on, which slows it)`));
        data.dsReadProfile = dsSum;
        if (cluster.origin) {
          const orSum = summarizeProfiles(orProf, hitWindow);
          parts.push(render('Origin cache-hit read (20 KB original)', orSum, hitLine));
          data.originHitProfile = orSum;
          const missSum = summarizeProfiles(missProf, missWindow);
          parts.push(render('Origin cache miss of an original (20 KB, caches off)', missSum, missLine));
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
        dir: join(ctx.work, 'c2'), dataservers: 3, replicas: 2,
        dataserverNodeFlags: ['--cpu-prof', '--cpu-prof-dir', dsProf],
        nameserverNodeFlags: ['--cpu-prof', '--cpu-prof-dir', nsProf],
        dataserverArgs: ['--fsync=false'],
      });
      try {
        const w = await clientWriter(cluster.nameserver.url);
        await runLoad({ concurrency: 16, durationS: 1, op: async () => { await w.put(body, 'application/octet-stream', 2); return SIZE; } });
        const upFrom = nowUs();
        const res = await runLoad({ concurrency: 16, durationS: dur, op: async () => { await w.put(body, 'application/octet-stream', 2); return SIZE; } });
        await w.close?.();
        const upWindow = { fromUs: upFrom, toUs: nowUs() };
        data.upload = { opsPerS: res.opsPerS, p50: res.p50, p99: res.p99 };
        await cluster.stop();
        const s = summarizeProfiles(dsProf, upWindow);
        parts.push(render('Replicated upload (20 KB, replicas 2, fsync off): the three data servers together', s, `${dur} s of 16 concurrent cluster-client writes: ${num(res.opsPerS)} writes/s, p50 ${micros(res.p50)}, p99 ${micros(res.p99)}`));
        data.uploadProfile = s;
        const ns = summarizeProfiles(nsProf, upWindow);
        parts.push(render('Replicated upload: the name server (assign)', ns, 'the same run'));
        data.assignProfile = ns;
      } finally {
        await cluster.stop().catch(() => {});
      }
    }

    // The two hops of a write timed apart: assign at the name server, PUT to the primary.
    const split: string[][] = [];
    for (const fsync of ['false', 'true']) {
      const r = await runCommand(process.execPath, [RUN_TS, join(ROOT, 'bench', 'profile-write-split.ts'), '--replicas', '2', '--fsync', fsync, '--count', ctx.quick ? '50' : '150'], { timeoutMs: 5 * 60_000 });
      for (const l of parseExternalLines(r.stdout)) split.push([`fsync ${fsync === 'true' ? 'on' : 'off'}`, l.metric.replace('writes/s at concurrency ', ''), num(l.value), String(l.assign), String(l.put)]);
      if (r.code !== 0) split.push([`fsync ${fsync === 'true' ? 'on' : 'off'}`, 'failed', r.stderr.trim().split('\n').pop() ?? '', '', '']);
    }
    commands.push('node bin/run-ts.mjs bench/profile-write-split.ts --replicas 2 --fsync false|true');
    data.writeSplit = split;
    parts.push('### A write, hop by hop', '', 'bench/profile-write-split.ts: 20 KB writes with replicas 2 on 3 data servers, the assign and the PUT to the primary (which forwards to the second replica) timed apart, 1 writer and then 16 at once.', '', table(['', 'writers', 'writes/s', 'assign', 'PUT to primary (incl. forward)'], split), '');
    parts.push(findings(data as Record<string, ProfileSummary | undefined>));
    return { markdown: parts.join('\n'), goals: [], commands, data };
  },
};

/** Share of the busy time spent in functions called `name` (any file). */
function share(sum: ProfileSummary | undefined, ...names: string[]): string {
  if (!sum) return '?';
  const ms = sum.functions.filter((f) => names.some((n) => f.name === n || f.name.startsWith(n + ' '))).reduce((t, f) => t + f.selfMs, 0);
  return `${((ms / sum.busyMs) * 100).toFixed(0)}%`;
}

/** The heaviest JavaScript functions (not native, not GC), as a readable list. */
function topJs(sum: ProfileSummary | undefined, n = 3): string {
  if (!sum) return '?';
  return sum.functions
    .filter((f) => f.component !== 'native' && !f.component.startsWith('('))
    .slice(0, n)
    .map((f) => `\`${f.name.split(' ')[0]}\` (${f.component}, ${(f.share * 100).toFixed(0)}%)`)
    .join(', ');
}

// What the profiles showed and what was done about it. The shares are read from this
// run's profiles; the judgements were made from them and are kept here by hand.
function findings(d: Record<string, ProfileSummary | undefined>): string {
  return `### Findings and changes

- **Data-server read.** Heaviest JavaScript: ${topJs(d.dsReadProfile)}. Most of the CPU is the two system calls a read cannot avoid:
  \`writev\` (sending the answer, ${share(d.dsReadProfile, 'writev')}) and the positioned \`read\` of the record
  (${share(d.dsReadProfile, 'read')} incl. the FileHandle binding). Next is \`decodeNeedle\` (${share(d.dsReadProfile, 'decodeNeedle')}): the CRC32-C of
  every record is checked before it is served — a design rule (a bad record is never
  served), so it stays. Smaller, avoidable costs seen: SHA-256 in the cluster-secret check
  (\`Hash\`/\`digest\`, ${share(d.dsReadProfile, 'Hash', 'digest')}: \`secretEquals\` hashes both the given and the expected secret on
  every internal request; the expected digest could be computed once), a random UUID per
  request id, and the per-request prom-client histogram. These are what separate the data
  server from the bare Node ceiling; they were reported to the data-server and foundation
  owners rather than changed from the bench.
- **Origin cache hit.** Heaviest JavaScript: ${topJs(d.originHitProfile)}. \`writev\` alone is ${share(d.originHitProfile, 'writev')} and GC ${share(d.originHitProfile, '(garbage collector)')}; the origin's own hit path
  (\`tryHit\`, cached-response headers, memory LRU) is a few percent. The hit path
  (src/origin/hit-path.ts) answers from the server's request listener before fastify,
  with precomputed headers, which is why hits run close to (or above) the bare fastify
  ceiling; what is left is Node's HTTP stack, which nginx does not pay.
- **Upload (data servers).** The heaviest JavaScript functions: ${topJs(d.uploadProfile)}.
  Among them \`classic-level _get\` (${share(d.uploadProfile, '_get')}): \`BlockStore.put\` looks the key up in LevelDB before every append to refuse
  duplicates, and for a fresh key that is always a miss that walks the LevelDB levels. The
  name server hands out every key once, so the lookup only matters for retried forwards;
  keeping it for those (or a per-block key filter) would take it off the common path. The
  LevelDB batch of the group commit (\`_batch\`, ${share(d.uploadProfile, '_batch')}) and the block write itself follow.
  Reported to the data-server owner.
- **Upload (name server).** An assign is cheap (\`assign\` itself ${share(d.assignProfile, 'assign')}); the name server's
  time is HTTP handling. The hop-by-hop table shows the PUT to the primary, not the assign,
  is where a write waits.
- **Changed in the bench because of the profiles:** profiles are cut to the load window
  (start-up and module loading left out, they were a fifth of the samples), and the write
  split timer (bench/profile-write-split.ts) was added to tell the two hops apart.
`;
}
