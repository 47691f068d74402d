// Name-server promotion at scale (issue 24: "restart or promotion to serving assigns"): a
// real etcd member (Debian's etcd-server, test/helpers/etcd.ts, as the ha section starts it)
// holding --blocks block records, two real name servers on it (`ugcfs nameserver --etcd ...
// --advertise-url ...`, their own defaults but --repair-delay-ms 0), and simulated data
// servers (bench/lib/dataserver-sim.ts) beating both as data servers do: one loop and one
// report session per name server, so the standby has every server's reports too. Steps:
//   1. one etcd member, with --quota-backend-bytes (default 8 GiB, etcd's largest
//      recommended: 8M records take ~1.7 GB, over its 2 GiB default once the raft log and
//      free pages count) and --snapshot-count 10000 (the raft log held in memory is
//      released every 10,000 writes, not etcd 3.4's 100,000: at 128 records a write the
//      default would keep ~12.8M records' worth of log in memory);
//   2. the block records (replicas 2, sealed, spread over the servers) written into etcd
//      through the name server's own store code (EtcdMetadataStore, --seed-in-flight
//      transactions of 128 at a time), `nextBlockId` moved past them;
//   3. name server A starts (loads every record, wins the election), then B: its start to
//      listening is the standby's load time; to GET /leader saying standby, its ready time;
//   4. the servers (their blocks held from the first beat) beat both until each has every
//      server's full report; a few beats of steady state;
//   5. an open-loop client (the project's NameserverClient given both URLs: it follows the
//      leader, and tries the other one within its failover time) sends --assign-rate
//      assigns a second from 5 s before the kill until every report is in at B;
//   6. SIGKILL of A. From the kill: B elected (GET /leader on B, every 20 ms), B's first
//      assign answered (POST /assign straight to B, every 50 ms), every live server's full
//      report acknowledged whole by B (the simulator's clock); the assigns sent meanwhile:
//      p50 / p99 / worst and errors.
// Prints one JSON line per figure (bench/lib/results.ts's format).
//   node bin/run-ts.mjs bench/ns-promotion.ts [--quick] [--blocks 1000000 --servers 100]
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { opt } from '../src/base/config.ts';
import { SECRET_HEADER } from '../src/base/secret.ts';
import { NameserverClient } from '../src/clients/nameserver-client.ts';
import { NS_ROUTES, type LeaderStatus } from '../src/wire/protocol.ts';
import { NAMESERVER_OPTIONS } from '../nameserver/config.ts';
import { EtcdMetadataStore } from '../nameserver/metadata-store/etcd.ts';
import { startEtcd, etcdVersion, type EtcdCluster } from '../test/helpers/etcd.ts';
import { freePort, killAllChildren } from '../test/helpers/ready-process.ts';
import { waitFor } from '../test/helpers/proc.ts';
import { parseFlags } from './lib/flags.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { percentile } from './lib/stats.ts';
import { startUgcfs, type Child } from './lib/spawn.ts';
import { metricLines, rssBytes } from './lib/ns-scale-probe.ts';
import { etcdWeight, seedEtcdBlocks } from './lib/ns-scale-etcd.ts';
import { settled, SimControl, type SimStats } from './lib/ns-scale-sim.ts';

const D = NAMESERVER_OPTIONS;
const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, '50k blocks on 20 servers: a smoke check in about a minute'),
  blocks: opt.int(1_000_000, 'block records written into etcd (each on 2 servers)', { min: 1 }),
  servers: opt.int(100, 'simulated data servers', { min: 3 }),
  heartbeatMs: opt.int(D.heartbeatMs.default, "the servers' heartbeat interval (the name servers' --heartbeat-ms is passed when not its default)", { min: 10 }),
  leaseMs: opt.int(D.leaseMs.default, "the name servers' --lease-ms (passed when not its default)", { min: 1000 }),
  assignRate: opt.int(20, 'assigns per second (open loop) around the kill', { min: 1 }),
  seedInFlight: opt.int(8, 'etcd transactions in flight while the records are written', { min: 1 }),
  etcdQuotaBytes: opt.int(8 * 2 ** 30, "etcd's --quota-backend-bytes", { min: 2 ** 30 }),
  etcdSnapshotCount: opt.int(10_000, "etcd's --snapshot-count", { min: 1000 }),
  settleS: opt.int(2400, "longest wait for every server's reports, before and after the kill", { min: 10 }),
  stallS: opt.int(120, 'a wait for reports fails when no more server got in for this long', { min: 5 }),
}, { quick: { blocks: 50_000, servers: 20 } });

const secret = randomBytes(32).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ns-promotion: ${m}\n`);
const config = { blocks: flags.blocks, servers: flags.servers, heartbeatMs: flags.heartbeatMs, leaseMs: flags.leaseMs, etcdMembers: 1 };
const round = (v: number, d = 1) => Math.round(v * 10 ** d) / 10 ** d;
const out = (metricName: string, value: number, unit: string, extra: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ bench: 'ns-promotion', metric: metricName, value: Number.isFinite(value) ? round(value, 2) : value, unit, ...config, ...extra }) + '\n');

const PREFIX = '/ugcfs/bench-promotion';
const headers = { 'content-type': 'application/json', [SECRET_HEADER]: secret };

let etcd: EtcdCluster | undefined;
const ns: (Child | undefined)[] = [undefined, undefined];
let sim: SimControl | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAllChildren();
    void etcd?.stop().finally(() => process.exit(130));
  });
}

async function leaderOf(url: string): Promise<LeaderStatus | undefined> {
  try {
    const res = await request(url + NS_ROUTES.leader, { headers, headersTimeout: 2000, bodyTimeout: 2000 });
    const body = (await res.body.json()) as LeaderStatus;
    return res.statusCode === 200 ? body : undefined;
  } catch {
    return undefined;
  }
}

/** POST /assign to one name server; true when it answered 200. */
async function assignAt(url: string): Promise<boolean> {
  try {
    const res = await request(url + NS_ROUTES.assign, { method: 'POST', body: '{}', headers, headersTimeout: 30_000, bodyTimeout: 30_000 });
    await res.body.text();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** Open-loop assigns through the project's client (it finds the leader, and fails over), until stop(). */
function assignLoad(client: NameserverClient, rate: number) {
  const calls: Array<{ at: number; ms?: number; error?: string }> = [];
  let running = true;
  const pending: Promise<void>[] = [];
  const done = (async () => {
    const t0 = performance.now();
    for (let i = 0; running; i++) {
      const wait = t0 + (i * 1000) / rate - performance.now();
      if (wait > 0) await sleep(wait);
      if (!running) break;
      const call: (typeof calls)[number] = { at: Date.now() };
      calls.push(call);
      const s = performance.now();
      pending.push(client.assign().then(() => void (call.ms = performance.now() - s), (err: Error) => void (call.error = err.message)));
    }
    await Promise.all(pending);
  })();
  return {
    calls,
    async stop() {
      running = false;
      await done;
    },
  };
}

function nsArgs(i: number, ports: number[], endpoints: string[]): string[] {
  return [
    'nameserver',
    '--etcd', endpoints.join(','),
    '--etcd-prefix', PREFIX,
    '--advertise-url', `http://127.0.0.1:${ports[i]}`,
    '--port', String(ports[i]),
    '--repair-delay-ms', '0',
    ...(flags.heartbeatMs !== D.heartbeatMs.default ? ['--heartbeat-ms', String(flags.heartbeatMs)] : []),
    ...(flags.leaseMs !== D.leaseMs.default ? ['--lease-ms', String(flags.leaseMs)] : []),
  ];
}

try {
  // 1. etcd
  const etcdFlags = ['--quota-backend-bytes', String(flags.etcdQuotaBytes), '--snapshot-count', String(flags.etcdSnapshotCount)];
  etcd = await startEtcd({ members: 1, flags: etcdFlags, timeoutMs: 60_000 });
  const endpoints = etcd.endpoints;
  log(`etcd ${etcdVersion() ?? '?'}: /usr/bin/etcd (one member) ${etcdFlags.join(' ')}`);

  // 2. the records
  const store = await EtcdMetadataStore.open({ endpoints, prefix: PREFIX, timeoutMs: 120_000 });
  let t = Date.now();
  await seedEtcdBlocks(store, { blocks: flags.blocks, servers: flags.servers }, Date.now() - 86_400_000, flags.seedInFlight, (n) => log(`  ${n} records written`));
  const seedMs = Date.now() - t;
  await store.close();
  const seeded = await etcdWeight(endpoints[0]!);
  out('etcd_seed', seedMs, 'ms', { perS: Math.round((flags.blocks / seedMs) * 1000), inFlight: flags.seedInFlight, dbBytes: seeded.dbBytes, etcdRssBytes: seeded.rssBytes, quotaBytes: flags.etcdQuotaBytes, snapshotCount: flags.etcdSnapshotCount, etcdVersion: etcdVersion() });
  log(`wrote ${flags.blocks} block records into etcd in ${seedMs} ms; its database ${Math.round(seeded.dbBytes / 2 ** 20)} MiB, resident ${Math.round(seeded.rssBytes / 2 ** 20)} MiB`);

  // 3. the name servers: A leads, then B starts as its standby
  const ports = [await freePort(), await freePort()];
  const inspect = [await freePort(), await freePort()];
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const start = (i: number) => startUgcfs(nsArgs(i, ports, endpoints), { env: { UGCFS_CLUSTER_SECRET: secret }, nodeFlags: [`--inspect=127.0.0.1:${inspect[i]}`], timeoutMs: 60 * 60_000 });
  for (const i of [0, 1]) log(`name server ${'AB'[i]}: UGCFS_CLUSTER_SECRET=... node --inspect=127.0.0.1:${inspect[i]} bin/ugcfs.mjs ${nsArgs(i, ports, endpoints).join(' ')}`);
  t = Date.now();
  ns[0] = await start(0);
  const leaderLoadMs = Date.now() - t;
  await waitFor('A to lead', async () => ((await leaderOf(urls[0]!))?.role === 'leader' ? true : undefined), 120_000, 50);
  const leaderReadyMs = Date.now() - t;
  t = Date.now();
  ns[1] = await start(1);
  const standbyLoadMs = Date.now() - t;
  await waitFor('B to stand by', async () => {
    const s = await leaderOf(urls[1]!);
    return s?.role === 'standby' && s.leader === urls[0] ? true : undefined;
  }, 120_000, 50);
  const standbyReadyMs = Date.now() - t;
  out('standby_load', standbyLoadMs, 'ms', { readyMs: standbyReadyMs, leaderLoadMs, leaderReadyMs, records: flags.blocks, note: "B's start to listening (every record loaded from etcd); readyMs: to GET /leader saying standby; leader*: A's, started alone on the same etcd" });
  log(`A listening after ${leaderLoadMs} ms, leading after ${leaderReadyMs} ms; B listening after ${standbyLoadMs} ms, standing by after ${standbyReadyMs} ms`);

  // 4. the servers report to both
  let firstRepair: Record<string, unknown> | undefined;
  sim = new SimControl({
    nameservers: urls, servers: flags.servers, blocks: flags.blocks, heartbeatMs: flags.heartbeatMs, churnServers: 0.2, churnBlocks: 2, secret, log, load: true,
    onEvent: (m) => void (m.event === 'repair' ? (firstRepair ??= m) : log(`simulator: ${JSON.stringify(m)}`)),
  });
  await sim.start();
  t = Date.now();
  const say = (who: string) => (s: SimStats) => void log(`  ${who}: ${s.listedBy.join(' / ')} of ${s.live} servers' reports in at A / B; ${s.fullsBy.join(' / ')} full reports since; ${s.asks} asks, ${s.waits} told to wait, ${s.fullRequests} turns; ${s.failed} beats failed ${JSON.stringify(s.errors)}; simulator ${Math.round(s.memoryBytes / 2 ** 20)} MiB`);
  const first = await settled(sim, {
    timeoutMs: flags.settleS * 1000,
    stallMs: flags.stallS * 1000,
    progress: (s) => s.listedBy[0]! + s.listedBy[1]!,
    done: (s) => s.registered === flags.servers && s.listedBy.every((n) => n === s.live),
    say: say('before the kill'),
  });
  if (!first.st) throw new Error(`the servers' reports did not all get in before the kill: ${first.last.listedBy.join(' / ')} of ${first.last.live}`);
  const initialMs = Date.now() - t;
  log(`every server's full report is in at A and B after ${initialMs} ms`);
  await sleep(5 * flags.heartbeatMs);
  const weight = await etcdWeight(endpoints[0]!);
  // Whoever leads now is killed: under the load of 8M blocks' reports the lead may have moved.
  const roles = await Promise.all(urls.map((u) => leaderOf(u)));
  const lead = roles.findIndex((r) => r?.role === 'leader');
  if (lead < 0) throw new Error(`no name server leads before the kill: ${JSON.stringify(roles)}`);
  const stby = 1 - lead;
  const leaderMoved = lead !== 0;
  if (leaderMoved) log(`the lead moved from A to B before the kill (epoch ${roles[lead]!.epoch}): B is killed, A measured`);
  const rssA = rssBytes(ns[lead]!.pid);
  const rssB = rssBytes(ns[stby]!.pid);
  out('reports_in_both', initialMs, 'ms', { longestGapMs: first.longestGapMs, leaderRssBytes: rssA, standbyRssBytes: rssB, leaderMovedBeforeKill: leaderMoved, etcdRssBytes: weight.rssBytes, etcdDbBytes: weight.dbBytes, note: "from the simulator's start until both name servers had every server's full report" });

  // 5., 6. the kill
  const client = new NameserverClient({ nameservers: urls, secret });
  const load = assignLoad(client, flags.assignRate);
  await sleep(5000);
  await sim.stats(true);
  const cpu0 = processCpuMs(ns[stby]!.pid);
  const tKill = Date.now();
  log(`SIGKILL of the leader ${'AB'[lead]} (pid ${ns[lead]!.pid}); the standby's inspector: 127.0.0.1:${inspect[stby]}`);
  const killed = ns[lead]!.kill('SIGKILL');
  ns[lead] = undefined;
  const elected = waitFor('B to lead', async () => ((await leaderOf(urls[stby]!))?.role === 'leader' ? Date.now() - tKill : undefined), flags.settleS * 1000, 20);
  const firstAssign = waitFor("B's first assign", async () => ((await assignAt(urls[stby]!)) ? Date.now() - tKill : undefined), flags.settleS * 1000, 50);
  const after = await settled(sim, {
    timeoutMs: flags.settleS * 1000,
    stallMs: flags.stallS * 1000,
    fullsSince: tKill,
    progress: (s) => s.fullsBy[stby]!,
    done: (s) => s.fullsBy[stby] === s.live,
    say: say('after the kill'),
  });
  const electedMs = await elected;
  const firstAssignMs = await firstAssign;
  await killed;
  const reportsInMs = after.st ? after.st.lastFullAtBy[stby]! - tKill : Number.NaN;
  const nsCpuPct = ((processCpuMs(ns[stby]!.pid) - cpu0) / Math.max(1, Date.now() - tKill)) * 100;
  await load.stop();
  const last = after.last;
  log(`the standby led ${electedMs} ms after the kill, answered an assign after ${firstAssignMs} ms, had every server's full report after ${reportsInMs} ms`);
  log(`  the new leader's count: ${await metricLines(urls[stby]!, 'ugcfs_report_')}`);
  // B's own account of the take-over, timed from the kill (its log lines are JSON with `time`)
  for (const l of ns[stby]!.lines) {
    const m = /"time":(\d+).*"msg":"([^"]*(?:election|leads|acting|report is in|repair)[^"]*)"/.exec(l);
    if (m && Number(m[1]) >= tKill) log(`  new leader +${Number(m[1]) - tKill} ms: ${m[2]}`);
  }
  out('promotion_elected', electedMs, 'ms', { note: "SIGKILL of the leader to GET /leader on the standby saying leader (polled every 20 ms)" });
  out('promotion_first_assign', firstAssignMs, 'ms', { afterElectedMs: firstAssignMs - electedMs, goal: 30_000, note: 'SIGKILL of the leader to the first POST /assign the new leader answered (polled every 50 ms)' });
  const turns = { asks: last.asks, waits: last.waits, turnsGiven: last.fullRequests, fullReportsDone: last.fullsDone, fullPages: last.fullPages, failedBeats: last.failed, errors: last.errors, longestGapMs: after.longestGapMs, nsCpuPct: Math.round(nsCpuPct), simCpuPct: Math.round(last.simCpuPct), simPeakMemoryBytes: last.peakMemoryBytes, simPeakRssBytes: last.peakRssBytes };
  if (after.st) out('promotion_reports_in', reportsInMs, 'ms', { ...turns, note: "SIGKILL of the leader to every live server's full report acknowledged whole by the new leader" });
  else out('promotion_reports_in', Number.NaN, 'ms', { ...turns, error: `${last.fullsBy[stby]} of ${last.live} servers' full reports in at the new leader, none more for ${Math.round(after.longestGapMs / 1000)} s` });
  // the assigns sent from the kill until every report was in
  const end = tKill + (Number.isFinite(reportsInMs) ? reportsInMs : Date.now() - tKill);
  const window = load.calls.filter((c) => c.at >= tKill && c.at <= end);
  const ok = window.filter((c) => c.ms !== undefined).map((c) => c.ms!).sort((a, b) => a - b);
  const errors = window.filter((c) => c.error !== undefined);
  out('promotion_assign_worst', ok.length ? ok[ok.length - 1]! : Number.NaN, 'ms', { p50: round(percentile(ok, 50)), p99: round(percentile(ok, 99)), assigns: window.length, errors: errors.length, ...(errors[0] ? { firstError: errors[0].error!.slice(0, 160) } : {}), ratePerS: flags.assignRate, failoverMs: 10_000, note: "assigns sent through NameserverClient (both URLs) from the kill until every server's full report was in at the new leader" });
  if (firstRepair) log(`a repair request reached a simulated server: ${JSON.stringify(firstRepair)}`);
  const s = await sim.stats();
  out('simulator', s.simCpuPct, '% of one core', { memoryMiB: Math.round(s.memoryBytes / 2 ** 20), peakMemoryMiB: Math.round(s.peakMemoryBytes / 2 ** 20), peakRssMiB: Math.round(s.peakRssBytes / 2 ** 20), note: 'the simulator process since the kill' });
} finally {
  await sim?.stop();
  await Promise.all(ns.map((n) => n?.stop(60_000).catch(() => undefined)));
  await etcd?.stop();
}
process.exit(0);
