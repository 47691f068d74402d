// Recovery: re-replication speed after a data server is SIGKILLed (and the foreground read
// throughput while it runs); rebalance and compaction speed once those operations exist.
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Section, BenchContext } from '../context.ts';
import { runWrk, type WrkResult } from '../wrk.ts';
import { table, num, bytes } from '../markdown.ts';
import { rolesAvailable, startCluster, clientWriter, SECRET, type Cluster } from '../cluster.ts';
import { ROOT } from '../spawn.ts';
import { callRaw, callJson } from '../../../src/clients/http-client.ts';
import { NS_ROUTES, type Operation } from '../../../src/wire/protocol.ts';
import { ClusterClient } from '../../../src/clients/cluster-client.ts';

const FILE_SIZE = 200 * 1024;
const BLOCK_SIZE = 16 * 2 ** 20;
const DATASERVERS = 4;
const REPLICAS = 2;
const HEARTBEAT_MS = 200;
const DEAD_AFTER_MS = 1500;
const REPAIR_DELAY_MS = 0;
/** how often the status is polled for the end of the repair */
const POLL_MS = 100;
/** foreground reads are wrk runs of this many seconds, back to back */
const SLICE_S = 1;
/** slices read just before an operation, as its baseline */
const BASELINE_SLICES = 3;
const COMPACT_THRESHOLD = 0.1;
const KILL_ROW = `re-replication after SIGKILL of 1 of ${DATASERVERS} data servers`;

/** Sum of a counter over a server's /metrics, for the labels given. */
async function counter(url: string, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await callRaw(url + '/metrics').catch(() => undefined);
  if (!res || res.status !== 200) return Number.NaN;
  let sum = 0;
  for (const line of res.body.toString('utf8').split('\n')) {
    if (!line.startsWith(name)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** wrk in back-to-back slices until stop() says so; returns every slice. */
function readWhile(ctx: BenchContext, url: string, paths: string[], stop: () => boolean): Promise<WrkResult[]> {
  return (async () => {
    const out: WrkResult[] = [];
    while (!stop()) out.push(await runWrk({ wrk: ctx.tools.wrk!, url, paths, durationS: SLICE_S }));
    return out;
  })();
}

interface OpOutcome {
  op: Operation;
  secs: number;
  during: WrkResult[];
}

/** Starts a name-server operation and follows it to the end, reading in the foreground meanwhile. */
async function runOperation(ctx: BenchContext, cluster: Cluster, body: Record<string, unknown>, readPaths: string[]): Promise<OpOutcome> {
  let done = false;
  const t0 = Date.now();
  const started = await callJson<Operation>(cluster.nameserver.url + NS_ROUTES.ops, { method: 'POST', body, secret: SECRET });
  const during = cluster.origin && readPaths.length ? readWhile(ctx, cluster.origin.url, readPaths, () => done) : Promise.resolve([]);
  let op = started;
  const deadline = Date.now() + 10 * 60_000;
  while (op.state === 'running' || op.state === 'planned') {
    if (Date.now() > deadline) throw new Error(`${String(body.kind)} did not finish within 10 minutes`);
    await new Promise((r) => setTimeout(r, 100));
    op = await callJson<Operation>(cluster.nameserver.url + NS_ROUTES.op.replace(':id', encodeURIComponent(started.id)), { secret: SECRET });
  }
  const secs = ((op.finishedAt ?? Date.now()) - (op.startedAt ?? t0)) / 1000;
  done = true;
  return { op, secs, during: await during };
}

const rate = (rs: WrkResult[]) => (rs.length ? rs.reduce((n, r) => n + r.requests - r.non2xx, 0) / rs.length : Number.NaN);

export const section: Section = {
  id: 'recovery',
  title: 'Recovery: re-replication, rebalance and compaction speed',
  async run(ctx: BenchContext) {
    const roles = rolesAvailable();
    if (!roles.nameserver || !roles.dataserver) return { values: { notMeasured: 'needs the name server and data servers' }, goals: [], commands: [], data: {} };
    const files = ctx.quick ? 300 : 1000;
    const rows: (string | number)[][] = [];
    const notes: string[] = [];
    const data: Record<string, unknown> = {};
    let cluster: Cluster | undefined;
    try {
      cluster = await startCluster({
        dir: join(ctx.work, 'cluster'),
        dataservers: DATASERVERS,
        replicas: REPLICAS,
        origin: roles.origin && !!ctx.tools.wrk,
        nameserverArgs: ['--heartbeat-ms', String(HEARTBEAT_MS), '--dead-after-ms', String(DEAD_AFTER_MS), '--repair-delay-ms', String(REPAIR_DELAY_MS), '--startup-grace-ms', '0'],
        dataserverArgs: ['--heartbeat-ms', String(HEARTBEAT_MS), '--block-size', String(BLOCK_SIZE), '--fsync=false'],
        // the origin's caches off: every foreground read reaches a data server
        originArgs: ['--memory-cache-bytes', '0', '--cache-bytes', '0'],
      });
      const w = await clientWriter(cluster.nameserver.url);
      const fids: string[] = [];
      const body = randomBytes(FILE_SIZE);
      let next = 0;
      await Promise.all(Array.from({ length: 8 }, async () => {
        while (next < files) {
          next++;
          fids.push(await w.put(body, 'application/octet-stream'));
        }
      }));
      await w.close?.();
      // let heartbeats carry the final block sizes
      await new Promise((r) => setTimeout(r, 800));
      const before = await cluster.status();
      const victimIdx = 1;
      const victim = cluster.dataservers[victimIdx]!;
      const victimStatus = before.dataservers.find((d) => d.url === victim.url) ?? before.dataservers[victimIdx]!;
      const lostBytes = victimStatus.usedBytes;
      const paths = fids.map((f) => `/${f}`);
      // Baseline: the same 1 s slices as during the operation, just before it.
      const baselineOf = async (readPaths: string[]) => {
        if (!cluster?.origin) return Number.NaN;
        let n = 0;
        return rate(await readWhile(ctx, cluster.origin.url, readPaths, () => n++ >= BASELINE_SLICES));
      };
      if (cluster.origin) await runWrk({ wrk: ctx.tools.wrk!, url: cluster.origin.url, paths, durationS: SLICE_S });
      const survivors = cluster.dataservers.filter((d) => d !== victim);
      const fgBase = await baselineOf(paths);
      const copiedBefore = (await Promise.all(survivors.map((d) => counter(d.url, 'ugcfs_block_copy_bytes_total', { direction: 'in' })))).reduce((a, b) => a + b, 0);

      ctx.log(`  recovery: killing ${victimStatus.id} holding ${bytes(lostBytes)} in ${victimStatus.blocks} blocks`);
      let done = false;
      const tKill = Date.now();
      await victim.kill();
      const during = cluster.origin ? readWhile(ctx, cluster.origin.url, paths, () => done) : Promise.resolve([]);
      let tDetect = 0;
      let tDone = 0;
      const deadline = tKill + 5 * 60_000;
      while (Date.now() < deadline) {
        const s = await cluster.status().catch(() => undefined);
        if (s) {
          const dead = s.dataservers.some((d) => d.id === victimStatus.id && !d.alive);
          if (dead && !tDetect) tDetect = Date.now();
          if (tDetect && s.underReplicatedBlocks === 0) { tDone = Date.now(); break; }
        }
        await new Promise((r) => setTimeout(r, POLL_MS));
      }
      done = true;
      const duringRuns = await during;
      if (!tDone) throw new Error('under-replicated blocks did not return to 0 within 5 minutes');
      const copied = (await Promise.all(survivors.map((d) => counter(d.url, 'ugcfs_block_copy_bytes_total', { direction: 'in' })))).reduce((a, b) => a + b, 0) - copiedBefore;
      const repairSecs = (tDone - tDetect) / 1000;
      const moved = Number.isFinite(copied) && copied > 0 ? copied : lostBytes;
      const mbps = moved / 2 ** 20 / repairSecs;
      const fgDuring = rate(duringRuns);
      rows.push([
        KILL_ROW,
        bytes(moved),
        `${repairSecs.toFixed(1)} s (+${((tDetect - tKill) / 1000).toFixed(1)} s to declare it dead)`,
        `${mbps.toFixed(1)} MB/s`,
        cluster.origin ? `${num(fgDuring)} req/s during vs ${num(fgBase)} before (${((fgDuring / fgBase) * 100).toFixed(0)}%)` : 'not measured',
      ]);
      data.rereplication = { lostBytes, copied, repairSecs, detectSecs: (tDetect - tKill) / 1000, mbps, fgBase, fgDuring, slices: duringRuns.length };

      // Rebalance: an empty data server joins the three survivors; the name server moves
      // blocks onto it (default move concurrency, no rate limit).
      if (existsSync(join(ROOT, 'cli', 'commands', 'rebalance.ts'))) {
        try {
          // the cluster's data-server flags, on a rack of its own
          const fresh = cluster.dataservers[await cluster.addDataserver({ rack: 'r9' })]!;
          const until = Date.now() + 20_000;
          while (!(await cluster.status()).dataservers.some((d) => d.url === fresh.url && d.alive)) {
            if (Date.now() > until) throw new Error('the new data server did not register');
            await new Promise((r) => setTimeout(r, 100));
          }
          const base = await baselineOf(paths);
          const r = await runOperation(ctx, cluster, { kind: 'rebalance' }, paths);
          const mb = r.op.bytesDone / 2 ** 20;
          rows.push([`rebalance onto a new, empty data server (${r.op.done}/${r.op.total} block moves, ${r.op.state})`, bytes(r.op.bytesDone), `${r.secs.toFixed(1)} s`, `${(mb / r.secs).toFixed(1)} MB/s`, cluster.origin ? `${num(rate(r.during))} req/s during vs ${num(base)} before (${((rate(r.during) / base) * 100).toFixed(0)}%)` : 'not measured']);
          data.rebalance = { op: r.op, secs: r.secs, fgBase: base, fgDuring: rate(r.during) };
        } catch (err) {
          rows.push(['rebalance', `failed: ${(err as Error).message.split('\n')[0]!.slice(0, 120)}`, '', '', '']);
        }
      }

      // Compaction: delete every other file, then compact every block past 10% deleted.
      if (existsSync(join(ROOT, 'cli', 'commands', 'compact.ts'))) {
        try {
          const client = new ClusterClient({ nameserver: cluster.nameserver.url, secret: SECRET });
          const keep: string[] = [];
          for (let i = 0; i < fids.length; i++) {
            if (i % 2) await client.delete(fids[i]!);
            else keep.push(fids[i]!);
          }
          await client.close();
          await new Promise((r) => setTimeout(r, 800));
          const s = await cluster.status();
          const scanned = s.dataservers.filter((d) => d.alive).reduce((n, d) => n + d.usedBytes, 0);
          const base = await baselineOf(keep.map((f) => `/${f}`));
          const r = await runOperation(ctx, cluster, { kind: 'compact', threshold: COMPACT_THRESHOLD }, keep.map((f) => `/${f}`));
          const reclaimed = Number((r.op.details as { reclaimedBytes?: number } | undefined)?.reclaimedBytes ?? r.op.bytesDone);
          rows.push([`compaction after deleting half the files (${r.op.done} block copies, ${r.op.state})`, `${bytes(scanned)} scanned, ${bytes(reclaimed)} reclaimed`, `${r.secs.toFixed(1)} s`, `${(scanned / 2 ** 20 / r.secs).toFixed(1)} MB/s scanned`, cluster.origin ? `${num(rate(r.during))} req/s during vs ${num(base)} before (${((rate(r.during) / base) * 100).toFixed(0)}%)` : 'not measured']);
          data.compaction = { op: r.op, secs: r.secs, scanned, reclaimed, fgBase: base, fgDuring: rate(r.during) };
        } catch (err) {
          rows.push(['compaction', `failed: ${(err as Error).message.split('\n')[0]!.slice(0, 120)}`, '', '', '']);
        }
      }
    } catch (err) {
      rows.push([KILL_ROW, `failed: ${(err as Error).message.split('\n')[0]!.slice(0, 120)}`, '', '', '']);
    } finally {
      await cluster?.stop().catch(() => {});
    }
    for (const [op, cmd] of [['rebalance', 'rebalance'], ['compaction', 'compact']] as const) {
      if (!existsSync(join(ROOT, 'cli', 'commands', `${cmd}.ts`))) rows.push([op, 'not yet measured', '', '', `\`ugcfs ${cmd}\` does not exist yet`]);
    }
    const values = {
      dataservers: DATASERVERS,
      replicas: REPLICAS,
      blockMib: BLOCK_SIZE / 2 ** 20,
      heartbeatMs: HEARTBEAT_MS,
      deadAfterS: DEAD_AFTER_MS / 1000,
      repairDelayMs: REPAIR_DELAY_MS,
      files,
      fileKb: FILE_SIZE / 1024,
      pollMs: POLL_MS,
      sliceS: SLICE_S,
      baselineSlices: BASELINE_SLICES,
      compactThreshold: COMPACT_THRESHOLD,
      table: table(['operation', 'bytes', 'time', 'speed', 'foreground reads'], rows),
      notes: notes.join('\n'),
    };
    return { values, goals: [], commands: [], data };
  },
};
