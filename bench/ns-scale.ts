// The name server at scale: ONE real name server (`ugcfs nameserver`, LevelDB state, its own
// defaults but --repair-delay-ms 0) fed by simulated data servers (bench/lib/dataserver-sim.ts:
// one process speaking the real heartbeat protocol for every made-up server, and answering
// the name server's calls to them). Steps:
//   1. a fresh name server; the servers register holding nothing (they learn the cluster id);
//      its memory and CPU with no block are the baseline;
//   2. it is stopped, --blocks block records (replicas 2, sealed, spread over the servers) are
//      written into its state with its own store code, the servers now hold those blocks;
//   3. it is started again: restart time to listening, to the first assign answered, and
//      until every server's blocks are reported (full reports, paged). Each server asks for
//      the turn to send its full report, as data servers do; the name server gives
//      --full-reports-at-once turns at a time. Meanwhile a client sends --restart-assign-rate
//      assigns a second: their worst latency is the stall the reports cause. When no more
//      server gets its blocks in for --stall-s, that is reported as a stall and the run fails
//      (bench/lib/sections/ns-scale.ts then measures the rest in a second run with a long
//      --startup-grace-ms: no repair while the reports come in; every line says startupGraceMs);
//   4. a steady window with heartbeats only: its CPU (/proc/<pid>/stat) as % of one core;
//      then its live memory (full GC through the inspector, then /metrics: the heap in use and
//      the memory outside it, typed arrays' buffers) less the baseline's, per block;
//   5. assign latency under an open-loop load of --assign-rate assigns/s;
//   6. one server stops beating: time until GET /dataservers/<id> says dead, and until the
//      first repair request about one of its blocks reaches a simulated server.
// Prints one JSON line per figure (bench/lib/results.ts's format).
//   node bin/run-ts.mjs bench/ns-scale.ts [--quick] [--blocks 1000000 --servers 100]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { opt } from '../src/base/config.ts';
import { SECRET_HEADER } from '../src/base/secret.ts';
import type { DataserverStatus } from '../src/wire/protocol.ts';
import { NAMESERVER_OPTIONS } from '../nameserver/config.ts';
import { parseFlags } from './lib/flags.ts';
import { processCpuMs, processMajorFaults } from './lib/process-cpu.ts';
import { percentile } from './lib/stats.ts';
import { startUgcfs, type Child } from './lib/spawn.ts';
import { settled as settledAll, SimControl, type SimStats } from './lib/ns-scale-sim.ts';
import { liveMemory, metric, metricLines, rssBytes, seedBlocks } from './lib/ns-scale-probe.ts';
import { simId } from './lib/ns-scale-layout.ts';
import { freePort, killAllChildren } from '../test/helpers/ready-process.ts';
import { waitFor } from '../test/helpers/proc.ts';

const D = NAMESERVER_OPTIONS;
const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, '50k blocks on 20 servers, short windows: a smoke check in under a minute'),
  blocks: opt.int(1_000_000, 'blocks written into the name server\'s state (each on 2 servers)', { min: 1 }),
  servers: opt.int(100, 'simulated data servers', { min: 3 }),
  heartbeatMs: opt.int(D.heartbeatMs.default, "the servers' heartbeat interval (the name server's --heartbeat-ms is passed when not its default)", { min: 10 }),
  deadAfterMs: opt.int(D.deadAfterMs.default, "the name server's --dead-after-ms (passed when not its default)", { min: 20 }),
  repairDelayMs: opt.int(0, "the name server's --repair-delay-ms", { min: 0 }),
  steadyS: opt.number(30, 'seconds of the heartbeats-only window the CPU is measured over', { min: 1 }),
  assignRate: opt.int(50, 'assigns per second of the assign load (open loop)', { min: 1 }),
  assignS: opt.number(30, 'seconds of assign load', { min: 1 }),
  churnServers: opt.number(0.2, 'share of beats that carry a change', { min: 0, max: 1 }),
  churnBlocks: opt.int(2, 'blocks changed on such a beat', { min: 0 }),
  fullReportsAtOnce: opt.int(D.fullReportsAtOnce.default, "the name server's --full-reports-at-once (passed when not its default)", { min: 1 }),
  restartAssignRate: opt.int(20, 'assigns per second (open loop) while the servers report after the restart', { min: 1 }),
  startupGraceMs: opt.int(D.startupGraceMs.default, "the name server's --startup-grace-ms (passed when not its default)", { min: 0 }),
  settleS: opt.int(2400, 'longest wait for every server\'s blocks to be reported after the restart', { min: 10 }),
  stallS: opt.int(90, 'the restart fails as stalled when no more server\'s blocks got in for this long', { min: 5 }),
}, { quick: { blocks: 50_000, servers: 20, steadyS: 5, assignS: 5 } });

const secret = randomBytes(32).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ns-scale: ${m}\n`);
const config = { blocks: flags.blocks, servers: flags.servers, heartbeatMs: flags.heartbeatMs, fullReportsAtOnce: flags.fullReportsAtOnce };
let protocol = 'report';
/** the name server's start-up grace (no repair during it), said on every line when not its default */
const graceMs = flags.startupGraceMs;
const out = (metric: string, value: number, unit: string, extra: Record<string, unknown> = {}) =>
  process.stdout.write(JSON.stringify({ bench: 'ns-scale', metric, value: Number.isFinite(value) ? Math.round(value * 100) / 100 : value, unit, ...config, protocol, ...(graceMs !== D.startupGraceMs.default ? { startupGraceMs: graceMs } : {}), ...extra }) + '\n');

const work = mkdtempSync(join(tmpdir(), 'ugcfs-ns-scale-'));
const nsDir = join(work, 'ns');
const port = await freePort();
const inspectPort = await freePort();
const nsUrl = `http://127.0.0.1:${port}`;
const nsArgs = [
  'nameserver',
  '--data', nsDir,
  '--port', String(port),
  '--repair-delay-ms', String(flags.repairDelayMs),
  ...(flags.heartbeatMs !== D.heartbeatMs.default ? ['--heartbeat-ms', String(flags.heartbeatMs)] : []),
  ...(flags.deadAfterMs !== D.deadAfterMs.default ? ['--dead-after-ms', String(flags.deadAfterMs)] : []),
  ...(flags.fullReportsAtOnce !== D.fullReportsAtOnce.default ? ['--full-reports-at-once', String(flags.fullReportsAtOnce)] : []),
  ...(graceMs !== D.startupGraceMs.default ? ['--startup-grace-ms', String(graceMs)] : []),
];
// The inspector port only lets the bench force a full GC before reading the heap.
const startNs = () => startUgcfs(nsArgs, { env: { UGCFS_CLUSTER_SECRET: secret }, nodeFlags: [`--inspect=127.0.0.1:${inspectPort}`], timeoutMs: 30 * 60_000 });
log(`command: UGCFS_CLUSTER_SECRET=... node --inspect=127.0.0.1:PORT bin/ugcfs.mjs ${nsArgs.join(' ').replace(nsDir, 'NSDIR')}`);

// ---- the simulator and its commands

let firstRepair: { at: number; block: number; route: string; server: string } | undefined;
const sim = new SimControl({
  nameservers: [nsUrl], servers: flags.servers, blocks: flags.blocks, heartbeatMs: flags.heartbeatMs, churnServers: flags.churnServers, churnBlocks: flags.churnBlocks, secret, log,
  onEvent: (m) => {
    if (m.event === 'repair') firstRepair ??= m as unknown as typeof firstRepair;
    else if (m.event === 'protocol') {
      protocol = String(m.protocol);
      log(`the name server takes no block reports (${String(m.why)}): the simulated servers send whole lists in Heartbeat.blocks, as data servers before reports did`);
    }
  },
});
const rpc = <T = Record<string, unknown>>(cmd: string, extra: Record<string, unknown> = {}) => sim.rpc<T>(cmd, extra);
const simStats = (reset = false) => sim.stats(reset);

// ---- the name server's API, as an operator and a client call it

const headers = { 'content-type': 'application/json', [SECRET_HEADER]: secret };

async function assignOnce(): Promise<number> {
  const t0 = performance.now();
  const res = await request(`${nsUrl}/assign`, { method: 'POST', body: '{}', headers, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const text = await res.body.text();
  if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
  return performance.now() - t0;
}

async function dataserver(id: string): Promise<DataserverStatus> {
  const res = await request(`${nsUrl}/dataservers/${id}`, { headers, headersTimeout: 60_000, bodyTimeout: 60_000 });
  const body = (await res.body.json()) as DataserverStatus;
  if (res.statusCode !== 200) throw new Error(`GET /dataservers/${id}: HTTP ${res.statusCode}`);
  return body;
}

/** Open loop: request i leaves at i/rate s whatever the earlier ones are doing. */
async function assignLoad(rate: number, seconds: number): Promise<{ lat: number[]; errors: number; firstError?: string }> {
  const lat: number[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < Math.round(rate * seconds); i++) {
    const wait = t0 + (i * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(assignOnce().then((ms) => void lat.push(ms), (err: Error) => { errors++; firstError ??= err.message; }));
  }
  await Promise.all(pending);
  return { lat, errors, firstError };
}

/** CPU of the name server over `seconds`, as % of one core, with the simulator's figures for the same window. */
async function window(ns: Child, seconds: number): Promise<{ cpuPct: number; sim: SimStats }> {
  await simStats(true);
  const c0 = processCpuMs(ns.pid);
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const cpuPct = ((processCpuMs(ns.pid) - c0) / (Date.now() - t0)) * 100;
  return { cpuPct, sim: await simStats(true) };
}

/**
 * Waits until every live server's blocks are in (report acknowledged, or list accepted),
 * saying how it goes every 15 s. Undefined when no more server got in for `stallMs` or
 * `timeoutMs` passed; `longestGapMs`: the longest time no more server got in.
 */
function settled(timeoutMs: number, stallMs: number) {
  return settledAll(sim, {
    timeoutMs,
    stallMs,
    progress: (s) => s.listed,
    done: (s) => s.listed === s.live && s.registered === flags.servers,
    say: async (s) => {
      const applied = await metric(nsUrl, 'ugcfs_report_messages_total', 'kind="full"').catch(() => undefined);
      log(`  ${s.listed} of ${s.live} servers' blocks in; ${s.fullPages} full-report pages answered (${applied ?? '?'} applied by the name server), ${s.asks} asks for the turn (${s.waits} told to wait, ${s.fullRequests} turns given), ${s.failed} beats failed ${JSON.stringify(s.errors)}; simulator ${Math.round(s.memoryBytes / 2 ** 20)} MiB`);
    },
  });
}

/**
 * Starts the (stopped) name server and waits for every server's blocks: a client polls until
 * the first assign is answered, then sends --restart-assign-rate assigns a second (open loop)
 * until the reports are in; their worst latency is what a client feels of the reports coming
 * in.
 */
async function restart(): Promise<{ st?: SimStats; last: SimStats; settledMs: number; t0: number }> {
  let firstAssign: { at: number; ms: number } | undefined;
  let assignErr = '';
  let polling = true;
  const during: number[] = [];
  let duringErrors = 0;
  let duringFirstError: string | undefined;
  const t0 = Date.now();
  const poller = (async () => {
    while (polling && firstAssign === undefined) {
      try {
        const ms = await assignOnce();
        firstAssign = { at: Date.now() - t0, ms };
        during.push(ms);
      } catch (err) {
        assignErr = (err as Error).message;
        await sleep(100);
      }
    }
    if (!firstAssign) return;
    const pending: Promise<void>[] = [];
    const tA = performance.now();
    for (let i = 1; polling; i++) {
      const wait = tA + (i * 1000) / flags.restartAssignRate - performance.now();
      if (wait > 0) await sleep(wait);
      if (!polling) break;
      pending.push(assignOnce().then((ms) => void during.push(ms), (err: Error) => { duringErrors++; duringFirstError ??= err.message; }));
    }
    await Promise.all(pending);
  })();
  const proc = await startNs();
  ns = proc;
  const listeningMs = Date.now() - t0;
  await simStats(true); // what follows counts from the name server listening
  const cpuAtListening = processCpuMs(proc.pid);
  log(`restarted: listening after ${listeningMs} ms`);
  const { st, last, longestGapMs } = await settled(flags.settleS * 1000, flags.stallS * 1000);
  const settledMs = Date.now() - t0;
  // the name server's CPU while the reports came in: near 100% means it, not the turns' pace, set the time
  const reportCpuPct = ((processCpuMs(proc.pid) - cpuAtListening) / Math.max(1, settledMs - listeningMs)) * 100;
  polling = false;
  await poller;
  log(`  the name server's count: ${await metricLines(nsUrl, 'ugcfs_report_')}`);
  out('restart_listening', listeningMs, 'ms', { records: flags.blocks, freshStartMs: freshMs, note: 'process start to listening; freshStartMs: the same with no block' });
  out('restart_first_assign', firstAssign?.at ?? Number.NaN, 'ms', firstAssign === undefined ? { error: assignErr } : { latencyMs: Math.round(firstAssign.ms * 10) / 10 });
  const turns = { asks: last.asks, waits: last.waits, turnsGiven: last.fullRequests, fullReportsDone: last.fullsDone, fullPages: last.fullPages, failedBeats: last.failed, errors: last.errors, longestGapMs, nsCpuPct: Math.round(reportCpuPct), simCpuPct: Math.round(last.simCpuPct), simPeakMemoryBytes: last.peakMemoryBytes, simPeakRssBytes: last.peakRssBytes };
  if (!st) {
    const applied = await metric(nsUrl, 'ugcfs_report_messages_total', 'kind="full"').catch(() => undefined);
    const alive = await metric(nsUrl, 'ugcfs_dataservers_alive').catch(() => undefined);
    const under = await metric(nsUrl, 'ugcfs_under_replicated_blocks').catch(() => undefined);
    out('restart_reports_in', Number.NaN, 'ms', { error: `${last.listed} of ${last.live} servers' blocks in ${settledMs} ms after the restart, none more for ${Math.round(longestGapMs / 1000)} s`, stalledAfterMs: settledMs, serversIn: last.listed, of: last.live, fullPagesApplied: applied, aliveThen: alive, underReplicatedThen: under, ...turns });
  } else {
    out('restart_reports_in', settledMs, 'ms', { ...turns, note: "every server's blocks reported, from the restart" });
  }
  const sorted = [...during].sort((a, b) => a - b);
  out('restart_assign_worst', sorted.length ? sorted[sorted.length - 1]! : Number.NaN, 'ms', { p50: Math.round(percentile(sorted, 50) * 10) / 10, p99: Math.round(percentile(sorted, 99) * 10) / 10, assigns: sorted.length, errors: duringErrors, ...(duringFirstError ? { firstError: duringFirstError.slice(0, 160) } : {}), ratePerS: flags.restartAssignRate, note: "assigns from the first one answered until every server's blocks were in (or the stall)" });
  log(`${st ? "every server's blocks reported" : 'STALLED'} ${settledMs} ms after the restart: ${JSON.stringify(turns)}; assigns meanwhile: ${sorted.length}, worst ${Math.round(sorted[sorted.length - 1] ?? Number.NaN)} ms, ${duringErrors} failed`);
  return { st, last, settledMs, t0 };
}

let ns: Child | undefined;
/** process start to listening with no block */
let freshMs = 0;
// Ctrl-C or a kill: the servers go with the bench, and its scratch directory
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    killAllChildren();
    rmSync(work, { recursive: true, force: true });
    process.exit(130);
  });
}
try {
  // 1. fresh, no block
  const tStart = Date.now();
  ns = await startNs();
  freshMs = Date.now() - tStart;
  await sim.start();
  const t1 = Date.now();
  if (!(await settled(120_000, 60_000)).st) throw new Error('the simulated servers did not all register within 2 minutes');
  log(`${flags.servers} servers registered in ${Date.now() - t1} ms (protocol: ${protocol})`);
  await sleep(5 * flags.heartbeatMs);
  const empty = await window(ns, Math.min(5, flags.steadyS));
  const mem0 = await liveMemory(nsUrl, inspectPort);
  out('ns_cpu_no_blocks', empty.cpuPct, '% of one core', { beatsPerS: empty.sim.beats / empty.sim.seconds, note: 'the servers registered, holding no block' });

  // 2. the blocks, written into the stopped name server's state
  await ns.stop(60_000);
  ns = undefined;
  let t = Date.now();
  await seedBlocks(nsDir, { blocks: flags.blocks, servers: flags.servers }, Date.now() - 86_400_000);
  const seedMs = Date.now() - t;
  log(`wrote ${flags.blocks} block records in ${seedMs} ms`);
  const loaded = await rpc<{ ms: number; copies: number }>('load');
  log(`the simulated servers hold ${loaded.copies} copies`);

  // 3. restart
  const r = await restart();
  out('seed_records', seedMs, 'ms', { perS: Math.round((flags.blocks / seedMs) * 1000) });
  if (!r.st) throw new Error(`the restart did not settle: ${r.last.listed} of ${r.last.live} servers' blocks in after ${r.settledMs} ms`);
  const st = r.st;
  const t0 = r.t0;
  // the name server restart() started (TypeScript cannot see that assignment here)
  const server = ns as Child | undefined;
  if (!server) throw new Error('the name server is not running');

  // 4. steady: heartbeats only
  await sleep(3 * flags.heartbeatMs);
  const steady = await window(server, flags.steadyS);
  const s = steady.sim;
  out('ns_cpu_heartbeats', steady.cpuPct, '% of one core', {
    windowS: Math.round(s.seconds),
    beatsPerS: Math.round((s.beats / s.seconds) * 10) / 10,
    deltaBlocksPerS: Math.round(s.deltaBlocks / s.seconds),
    fullPages: s.fullPages,
    fullRequests: s.fullRequests,
    heartbeatBodyMBPerS: Math.round((s.bodyBytes / s.seconds / 1e6) * 10) / 10,
    beatP50Ms: Math.round(s.beatP50Ms * 10) / 10,
    beatP99Ms: Math.round(s.beatP99Ms * 10) / 10,
    failed: s.failed,
    simCpuPct: Math.round(s.simCpuPct),
    goal: 25,
  });
  const mem = await liveMemory(nsUrl, inspectPort);
  const rss = rssBytes(server.pid);
  // the name server's own count of its block tables, where it keeps one
  const tables = await metric(nsUrl, 'ugcfs_block_table_bytes');
  const perBlock = (m: { heap: number; external: number }) => (m.heap + m.external - mem0.heap - mem0.external) / flags.blocks;
  out('memory_per_block', perBlock(mem), 'B', {
    heapPerBlock: Math.round(((mem.heap - mem0.heap) / flags.blocks) * 10) / 10,
    externalPerBlock: Math.round(((mem.external - mem0.external) / flags.blocks) * 10) / 10,
    heapBytes: mem.heap,
    externalBytes: mem.external,
    baselineBytes: mem0.heap + mem0.external,
    rssBytes: rss,
    copies: loaded.copies,
    ...(tables !== undefined ? { blockTableBytesPerBlock: Math.round((tables / flags.blocks) * 10) / 10 } : {}),
    goal: 250,
  });

  // 5. assigns under the heartbeat load
  const c0 = processCpuMs(server.pid);
  const f0 = processMajorFaults(server.pid);
  const tA = Date.now();
  const a = await assignLoad(flags.assignRate, flags.assignS);
  const assignCpu = ((processCpuMs(server.pid) - c0) / (Date.now() - tA)) * 100;
  // the name server's waits on the disk for its own code or files (dropped by the kernel's reclaim)
  const majorFaults = processMajorFaults(server.pid) - f0;
  out('assign_p99', percentile(a.lat, 99), 'ms', { p50: Math.round(percentile(a.lat, 50) * 100) / 100, max: Math.round(Math.max(...a.lat) * 100) / 100, assigns: a.lat.length, errors: a.errors, ...(a.firstError ? { firstError: a.firstError.slice(0, 160) } : {}), ratePerS: flags.assignRate, nsCpuPct: Math.round(assignCpu), nsMajorFaults: majorFaults, goal: 10 });

  // 6. a server stops beating
  const victim = Math.floor(flags.servers / 2);
  const vid = simId(victim);
  // no repair during the name server's start-up grace: kill after it
  const grace = graceMs - (Date.now() - t0) - flags.deadAfterMs;
  if (grace > 0) await sleep(grace);
  const k = await rpc<{ at: number; lastBeat: { sentAt: number; at: number } | null }>('kill', { server: victim });
  const last = k.lastBeat?.sentAt ?? k.at;
  log(`${vid} stopped beating (its last beat left ${k.at - last} ms before)`);
  const detectAt = await waitFor(`${vid} declared dead`, async () => ((await dataserver(vid)).alive ? undefined : Date.now()), flags.deadAfterMs + 120_000, 100);
  out('dead_detected', detectAt - last, 'ms', { fromStopMs: detectAt - k.at, deadAfterMs: flags.deadAfterMs, poll: 'GET /dataservers/:id every 100 ms' });
  await waitFor('the first repair request', () => firstRepair, flags.deadAfterMs + flags.repairDelayMs + 120_000, 50).catch(() => undefined);
  if (firstRepair) {
    out('repair_started', firstRepair.at - last, 'ms', { fromDetectedMs: firstRepair.at - detectAt, route: firstRepair.route, block: firstRepair.block, repairDelayMs: flags.repairDelayMs, goal: flags.deadAfterMs + flags.repairDelayMs + 2000 });
  } else out('repair_started', Number.NaN, 'ms', { error: 'no repair request within 2 minutes' });
  const end = await simStats();
  out('simulator', end.simCpuPct, '% of one core', { note: 'the simulator process over the last window; its memory: heap + external, now and the most seen', memoryMiB: Math.round(end.memoryBytes / 2 ** 20), peakMemoryMiB: Math.round(end.peakMemoryBytes / 2 ** 20), peakRssMiB: Math.round(end.peakRssBytes / 2 ** 20), repairRequests: end.repairRequests });
  if (protocol !== 'report') out('protocol', Number.NaN, '', { note: `the name server read whole lists in Heartbeat.blocks: ${st.protocolWhy}` });
} finally {
  await sim.stop();
  await ns?.stop(60_000);
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
