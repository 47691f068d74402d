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
import { DS_ROUTES, HEADERS } from '../../../src/protocol.ts';

/** The data server read as the cluster client (so the origin) reads it: the client checks the CRC. */
const DS_READ_HEADERS = { 'x-ugcfs-secret': SECRET, [HEADERS.verify]: 'client' };
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
        parts.push(render('Data-server read (20 KB)', dsSum, `wrk ${dur} s of 20 KB reads on the data server's needle route, as the cluster client reads (\`x-ugcfs-verify: client\`): ${num(ds.rps)} req/s, p50 ${micros(ds.p50)}, p99 ${micros(ds.p99)} (profiling on, which slows it)`));
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
        nodeFlags: { dataserver: ['--cpu-prof', '--cpu-prof-dir', dsProf], nameserver: ['--cpu-prof', '--cpu-prof-dir', nsProf] },
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
// run's profiles; the history (first profile, then the changes that landed) is kept by hand.
function findings(d: Record<string, ProfileSummary | undefined>): string {
  return `### Findings and changes

**Reading these tables on this machine:** V8's profiler records wall time between samples,
and a thread descheduled inside a system call that woke another thread (a socket \`writev\`
waking the reader, a thread-pool submission waking a pool thread) is charged for the time
until it runs again. With more runnable threads than the 2 cores, \`writev\`'s share here is
largely waiting, not CPU: under replicated writes the profiler put a data server's socket
\`writev\` at 17-24 % of its main thread, \`perf\` (on-CPU samples only) all of its kernel
socket work at 7 %. The function lists show call structure; for CPU shares use \`perf\`.

**First profiles** (04:56 UTC, commit 8b61de2, same harness) showed, besides the system
calls every server pays (\`writev\` to send, the positioned \`read\`):
- data-server read: \`decodeNeedle\` ~10% (the record's CRC32-C, computed in more than
  one pass), fastify routing and hooks, and SHA-256 in the cluster-secret check;
- data-server write: \`classic-level _get\` 22% of the data servers' CPU — \`BlockStore.put\`
  looked every fresh key up in LevelDB (always a miss) to refuse duplicates — then the
  block write (\`writeBuffer\`) and the LevelDB batch of the group commit;
- a write, hop by hop: one assign round trip per file before the PUT;
- origin hit: already lean (\`tryHit\` a few percent), the rest Node's HTTP stack.

**Changed on those paths since** (by the parts' owners, measured with these tools and
their own bench scripts):
- 5ab9da1 — puts skip the LevelDB duplicate lookup for keys above the block's highest key
  (the \`_get\` cost above; engine fill 31k → 50k records/s). This run: \`_get\` is
  ${share(d.uploadProfile, '_get')} of the data servers' CPU under writes.
- 4bc3efc, c90db82, a6fcf8f — one CRC pass per read and write (CRC32-C combine), hot
  \`GET/HEAD /needles/:fid\` answered ahead of fastify with \`fs.read\` on the raw fd, index
  cache hits answered synchronously, labelled metrics bound once. This run:
  \`decodeNeedle\` ${share(d.dsReadProfile, 'decodeNeedle')} of a data-server read.
- 43150d8 — appends written with one \`writev\` of header, data and trailer (no copy of
  the file bytes per record).
- cff0ccd, ed234f7, 1f2b0f1 — the client builds hashrings lazily and shares them; assigns
  come in batches (32 fids per round trip, about 1 MiB worth for larger files), so most
  writes make one hop instead of two.
- 1b1af65, 40ace42 — \`PUT /needles/:fid\` (client writes and forwards) answered ahead of
  fastify like reads; the cluster secret is hashed once per connection, not per request
  (the SHA-256 of every internal request the first profiles showed).
- 2d7df3e — concurrent client writes to one block are coalesced into one batch request to
  the primary, forwarded as one request per replica (the per-request HTTP work was most of
  a data server's JavaScript per write); each write still ends on its own.
- 1a52a95, 24406bc — the origin's hit path writes precomputed header pairs and keeps
  the memory key per URL.
- 8da2eef — fid cookies come from a pool of random bytes (\`randomFillSync\` was 11% of the
  name server's CPU under writes: \`randomBytes(4)\` per fid); name-server CPU per 32-fid
  assign 45-48 µs against 128-152 µs.
- Pooled read buffers (buffer-pool.ts: GC phases of 13-17 % of the data server's main
  thread under reads), reads the client checks (\`x-ugcfs-verify: client\`: no server pass
  over the data), and reads in place (sync-read-gate.ts: a record up to 256 KiB is a
  synchronous pread while reads stay page-cache fast; the thread-pool round trip cost the
  main thread ~11 µs per 20 KB read, more than the copy): in place against the thread pool
  in one run, 41.0 → 25.6 µs of data-server CPU per 20 KB read (bench/dataserver-reads.ts).
- f1b4bc3, 3ab068c — V8's marking under write load: index entries cached in typed arrays
  (index-entry-cache.ts; the Map's objects were promoted and died in the old generation, one
  pair per write) and \`--initial-old-space-size=64\` on every ugcfs process and the bench's
  own (small heaps had V8 start marking every ~200 ms): mark-compacts 49-102 → 2-6 per 30,000
  replicated writes on three data servers, the writes section's replicas-2 row 0.28x → 0.41x
  of nginx PUT in the next run. Found with \`--trace-gc\`; CPU shares on this VM from
  \`perf record -a -g\` (V8's profiler charges a thread's descheduled time to the system
  call that woke another thread).
- 00de514, fd66576, d80ea3f, 5f18626 — the replicated write path, measured with
  \`perf record -a -g\` and V8's inline-cache log (\`--log-ic\`): on Node 20 a quarter of V8's
  interrupt budget (per-request functions had run in baseline code with generic inline
  caches); assign batches of 100 fids (name-server CPU per write 41-43 → 21-23 µs); queued
  appends as one class and block metas built in one field order (every property access on a
  queued append in the group commit had gone megamorphic: inline-cache misses were 19 % of
  a data server's main-thread samples, 12 % after); four coalesced batches in flight per
  block instead of two. Replicas 2 on the writes section's cluster (256 MiB blocks, as
  bench/cluster-write.ts now uses too): ~2,100 → 3,000-4,200 writes/s over this machine's noisy
  runs; the writes section's row 0.35x → 0.43-0.46x, within its round-to-round noise.
- ce9e156 — direct appends: a group commit's whole 4 KiB pages go to the block file with
  \`O_DIRECT\` from page-aligned staging buffers, the partial pages at either end buffered
  (dataserver/README.md, "Direct appends"). perf had put the data servers' \`pwritev\` in
  libuv's threads at 29 % of all CPU samples under replicated writes, most of it filling fresh
  page-cache pages (10-50 µs of kernel time per 20 KB on this VM). Four adjacent off/on pairs
  on the writes section's cluster: data servers' system CPU per replicas-2 write 210-236 →
  80-103 µs, 2,395-2,893 → 2,791-3,782 writes/s; the writes section's row 0.39x → 0.65x,
  0.53x and 0.56x of nginx PUT in the three 5-round runs after it.
- In the bench itself: profiles are cut to the load window (module loading was a fifth of
  the samples), and bench/profile-write-split.ts times the two hops of a write apart.

**This run**, heaviest JavaScript per path — data-server read: ${topJs(d.dsReadProfile)};
origin hit: ${topJs(d.originHitProfile)} (\`writev\` alone ${share(d.originHitProfile, 'writev')});
origin miss: ${topJs(d.originMissProfile)}; data-server write: ${topJs(d.uploadProfile)};
name server under assigns: ${topJs(d.assignProfile)}.
The cluster secret's SHA-256 (\`Hash\`/\`digest\`) is now ${share(d.dsReadProfile, 'Hash', 'digest')} of a data-server read.
`;
}

