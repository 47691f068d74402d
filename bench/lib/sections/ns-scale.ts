// The name server at scale (issue 24): bench/ns-scale.ts per configuration — one real name
// server fed by simulated data servers — at 1M blocks on 100 data servers and 8M on 400
// (--ns-scale-blocks picks which; --quick: the script's own 50k blocks on 20), then
// bench/ns-promotion.ts for the same configuration — two name servers on etcd, the leader
// SIGKILLed — when etcd is installed. The goals are the issue's, for 8M blocks on 400 data
// servers; a smaller configuration's figures are shown against them but not judged.
import { join } from 'node:path';
import type { Section, BenchContext, SectionOutput } from '../context.ts';
import type { Goal } from '../results.ts';
import { parseExternalLines, type ExternalLine } from '../results.ts';
import { readFlags } from '../flags.ts';
import { RUN_OPTIONS } from '../run-options.ts';
import { spawn } from 'node:child_process';
import { ROOT, RUN_TS } from '../spawn.ts';
import { splitLines, trackChild } from '../../../test/helpers/ready-process.ts';
import { table, num } from '../markdown.ts';
import { rolesAvailable } from '../cluster.ts';
import { etcdUsable } from '../../../test/helpers/etcd.ts';

/** the configuration the goals are for */
const GOAL = { blocks: 8_000_000, servers: 400 };

/** Simulated data servers for a block count: the issue's pairs, ~2,500 blocks each below them. */
export function serversFor(blocks: number): number {
  if (blocks >= 8_000_000) return 400;
  if (blocks >= 1_000_000) return 100;
  return Math.max(3, Math.round(blocks / 2500));
}

const label = (blocks: number, servers: number) => `${blocks >= 1e6 ? `${blocks / 1e6}M` : `${blocks / 1e3}k`} blocks / ${servers} servers`;
const secs = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '—' : `${(ms / 1000).toFixed(1)} s`);
const millis = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? '—' : `${ms.toFixed(1)} ms`);

/** The start-up grace of the second run after a stalled restart: longer than 8M blocks' reports take. */
const HELD_OFF_MS = 300_000;

const errorOf = (stderr: string, code: number | null) => (stderr.trim().split('\n').filter((l) => /^(\s*\[sim\] )?(Error|dataserver-sim: (uncaught|unhandled))/.test(l)).pop() ?? `exit ${code}`).slice(0, 300);

/** Runs bench/<script>, its progress lines passed on to the log (a run at 8M takes most of an hour). */
function runBench(args: string[], log: (m: string) => void, script = 'ns-scale.ts'): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [RUN_TS, join(ROOT, 'bench', script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    splitLines(child.stderr, (l) => {
      stderr += l + '\n';
      if (/ns-scale:|ns-promotion:|dataserver-sim:|Error/.test(l)) log(`    ${l}`);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 3 * 3600_000);
    child.on('error', (err) => void (stderr += err.message));
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

export interface Run {
  blocks: number;
  servers: number;
  command: string;
  code: number | null;
  error?: string;
  lines: ExternalLine[];
  /** bench/ns-promotion.ts's run of the same configuration (absent: etcd missing, or not run) */
  promotion?: { command: string; code: number | null; error?: string; lines: ExternalLine[] };
}

const find = (r: Run, metric: string) => r.lines.find((l) => l.metric === metric) ?? r.promotion?.lines.find((l) => l.metric === metric);
const value = (r: Run, metric: string) => {
  const v = find(r, metric)?.value;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
};

function rows(runs: Run[]): (string | number)[][] {
  const cell = (f: (r: Run) => string) => runs.map((r) => (r.code === 0 || r.lines.length > 0 ? f(r) : 'failed'));
  // After a stalled restart the section runs the configuration again with repairs held off
  // (its restart lines end in _grace): a cell shows the first restart, then that one.
  const both = (r: Run, f: (r: Run, suffix: string) => string) => (find(r, 'restart_reports_in_grace') ? `${f(r, '')}; held off: ${f(r, '_grace')}` : f(r, ''));
  const restartIn = (r: Run, x: string) => {
    const l = find(r, `restart_reports_in${x}`);
    if (!l) return '—';
    if (!Number.isFinite(l.value)) return `**stalled**: ${String(l.serversIn)} of ${String(l.of)} in after ${secs(Number(l.stalledAfterMs))}`;
    return `${secs(l.value)} (${String(l.fullReportsAtOnce ?? '?')} at a time)`;
  };
  const turns = (r: Run, x: string) => {
    const l = find(r, `restart_reports_in${x}`);
    return l ? `${num(Number(l.asks))} / ${num(Number(l.waits))} / ${num(Number(l.turnsGiven))}; ${num(Number(l.failedBeats))}` : '—';
  };
  const gap = (r: Run, x: string) => {
    const l = find(r, `restart_reports_in${x}`);
    return l ? `${secs(Number(l.longestGapMs))}; ${num(Number(l.nsCpuPct), 0)}%` : '—';
  };
  const during = (r: Run, x: string) => {
    const l = find(r, `restart_assign_worst${x}`);
    return l ? `${millis(Number(l.p50))} / ${millis(Number(l.p99))} / ${millis(value(r, `restart_assign_worst${x}`))}; ${num(Number(l.assigns))} / ${num(Number(l.errors))}` : '—';
  };
  const hb = (r: Run) => find(r, 'ns_cpu_heartbeats');
  const mem = (r: Run) => find(r, 'memory_per_block');
  const assign = (r: Run) => find(r, 'assign_p99');
  return [
    ['heartbeats: name-server CPU, % of one core', ...cell((r) => `${num(value(r, 'ns_cpu_heartbeats'), 1)}%`)],
    ['  beats/s; changed blocks/s in deltas', ...cell((r) => `${num(Number(hb(r)?.beatsPerS), 0)}; ${num(Number(hb(r)?.deltaBlocksPerS), 0)}`)],
    ['  beat round trip p50 / p99, as the servers see it', ...cell((r) => `${millis(Number(hb(r)?.beatP50Ms))} / ${millis(Number(hb(r)?.beatP99Ms))}`)],
    ['  the same servers holding no block: CPU', ...cell((r) => `${num(value(r, 'ns_cpu_no_blocks'), 1)}%`)],
    ['memory per block (heap + external), B', ...cell((r) => num(value(r, 'memory_per_block'), 1))],
    ['  of which JavaScript heap / external (typed arrays), B', ...cell((r) => `${num(Number(mem(r)?.heapPerBlock), 1)} / ${num(Number(mem(r)?.externalPerBlock), 1)}`)],
    ["  the name server's own count of its block tables, B per block", ...cell((r) => num(Number(mem(r)?.blockTableBytesPerBlock), 1))],
    ['  resident set size after the reports', ...cell((r) => `${num(Number(mem(r)?.rssBytes) / 2 ** 20, 0)} MiB`)],
    ['dead server declared dead (GET /dataservers/:id), from its last beat', ...cell((r) => secs(value(r, 'dead_detected')))],
    ['its first repair request arrives, from its last beat', ...cell((r) => `${secs(value(r, 'repair_started'))} (${String(find(r, 'repair_started')?.route ?? '—')})`)],
    ['assign p50 / p99 / max', ...cell((r) => `${millis(Number(assign(r)?.p50))} / ${millis(value(r, 'assign_p99'))} / ${millis(Number(assign(r)?.max))}`)],
    ['  assigns / errors', ...cell((r) => `${num(Number(assign(r)?.assigns))} / ${num(Number(assign(r)?.errors))}`)],
    ['restart: process start to listening (with no block)', ...cell((r) => `${both(r, (r, x) => secs(value(r, `restart_listening${x}`)))} (${secs(Number(find(r, 'restart_listening')?.freshStartMs))})`)],
    ['restart: to the first assign answered', ...cell((r) => both(r, (r, x) => secs(value(r, `restart_first_assign${x}`))))],
    ["restart: to every server's blocks reported (full reports at once)", ...cell((r) => both(r, restartIn))],
    ['  asks for the turn / told to wait / turns given; beats failed', ...cell((r) => both(r, turns))],
    ['  the longest time no more server got in; name-server CPU meanwhile', ...cell((r) => both(r, gap))],
    ['  assigns meanwhile: p50 / p99 / worst; assigns / errors', ...cell((r) => both(r, during))],
    ['block records written into the stopped state', ...cell((r) => `${secs(value(r, 'seed_records'))} (${num(Number(find(r, 'seed_records')?.perS))}/s)`)],
    ...promotionRows(runs),
    ['simulator process CPU (one process for all servers)', ...cell((r) => `${num(value(r, 'simulator'), 1)}%`)],
    ['  its memory (heap + external) at the end / the most seen; resident at most', ...cell((r) => { const l = find(r, 'simulator'); return l ? `${num(Number(l.memoryMiB))} / ${num(Number(l.peakMemoryMiB))} MiB; ${num(Number(l.peakRssMiB))} MiB` : '—'; })],
  ];
}

/** Why the promotion run starts one etcd member (the template says it). */
const PROMOTION_ONE_MEMBER = "each member keeps every record in its own memory (the etcd member's resident size below), and three of them beside two name servers holding 8M blocks each would not fit this machine's memory.";

/** The promotion run's rows (bench/ns-promotion.ts): two name servers on etcd, the leader SIGKILLed. */
function promotionRows(runs: Run[]): (string | number)[][] {
  if (!runs.some((r) => r.promotion)) return [];
  const cell = (f: (r: Run) => string) => runs.map((r) => (!r.promotion ? 'not run' : r.promotion.lines.length === 0 ? 'failed' : f(r)));
  const line = (r: Run, metric: string) => r.promotion?.lines.find((l) => l.metric === metric);
  const mib = (b: unknown) => `${num(Number(b) / 2 ** 20, 0)} MiB`;
  return [
    ['promotion (2 name servers on etcd): standby start, to listening (every record loaded) / standing by', ...cell((r) => `${secs(value(r, 'standby_load'))} / ${secs(Number(line(r, 'standby_load')?.readyMs))}`)],
    ['  SIGKILL of the leader to the standby elected', ...cell((r) => secs(value(r, 'promotion_elected')))],
    ['  to the first assign answered by the new leader', ...cell((r) => secs(value(r, 'promotion_first_assign')))],
    ["  to every server's full report in at the new leader", ...cell((r) => { const l = line(r, 'promotion_reports_in'); return !l ? '—' : Number.isFinite(l.value) ? secs(l.value) : `**stalled**: ${String(l.error ?? '—')}`; })],
    ['  assigns meanwhile (the client given both): p50 / p99 / worst; assigns / errors', ...cell((r) => { const l = line(r, 'promotion_assign_worst'); return l ? `${millis(Number(l.p50))} / ${millis(Number(l.p99))} / ${millis(l.value)}; ${num(Number(l.assigns))} / ${num(Number(l.errors))}` : '—'; })],
    ["  the new leader's CPU meanwhile; turns given; beats to the dead leader failed", ...cell((r) => { const l = line(r, 'promotion_reports_in'); return l ? `${num(Number(l.nsCpuPct), 0)}%; ${num(Number(l.turnsGiven))}; ${num(Number(l.failedBeats))}` : '—'; })],
    ["  before the kill: every server's reports in at both, from the servers' start", ...cell((r) => secs(value(r, 'reports_in_both')))],
    ['  resident: leader / standby / etcd member, reports in', ...cell((r) => { const l = line(r, 'reports_in_both'); return l ? `${mib(l.leaderRssBytes)} / ${mib(l.standbyRssBytes)} / ${mib(l.etcdRssBytes)}` : '—'; })],
    ['  block records written into etcd (records/s); its database', ...cell((r) => { const l = line(r, 'etcd_seed'); return l ? `${secs(l.value)} (${num(Number(l.perS))}/s); ${mib(l.dbBytes)}` : '—'; })],
  ];
}

export const section: Section = {
  id: 'ns-scale',
  title: 'Name server at scale: 1M and 8M blocks on 100 and 400 simulated data servers',
  async run(ctx: BenchContext) {
    if (!rolesAvailable().nameserver) return { values: { notMeasured: 'needs the name server' }, goals: [], commands: [], data: {} };
    // the runner's own flags, read again for this section's one (--ns-scale-blocks)
    const wanted = ctx.quick ? [0] : [...readFlags(RUN_OPTIONS, process.argv.slice(2)).nsScaleBlocks];
    const runs: Run[] = [];
    const noEtcd = etcdUsable();
    for (const blocks of wanted) {
      const servers = blocks === 0 ? 20 : serversFor(blocks);
      const args = blocks === 0 ? ['--quick'] : ['--blocks', String(blocks), '--servers', String(servers)];
      const n = blocks === 0 ? 50_000 : blocks;
      const command = `node bin/run-ts.mjs bench/ns-scale.ts ${args.join(' ')}`;
      ctx.log(`  ns-scale: ${label(n, servers)}`);
      const r = await runBench(args, ctx.log);
      const lines = parseExternalLines(r.stdout);
      let run: Run = { blocks: n, servers, command, code: r.code, lines, ...(r.code !== 0 ? { error: errorOf(r.stderr, r.code) } : {}) };
      ctx.log(`  ns-scale: ${label(n, servers)} done (exit ${r.code})`);
      const stalled = lines.find((l) => l.metric === 'restart_reports_in' && !Number.isFinite(l.value));
      if (stalled) {
        // The restart stalled: the rest is measured in a run of its own (a fresh name server,
        // not one the stall left behind) with no repair while the reports come in.
        const held = [...args, '--startup-grace-ms', String(HELD_OFF_MS)];
        ctx.log(`  ns-scale: ${label(n, servers)} again, with --startup-grace-ms ${HELD_OFF_MS}`);
        const r2 = await runBench(held, ctx.log);
        const lines2 = parseExternalLines(r2.stdout);
        run = {
          blocks: n,
          servers,
          command: `${command}\nnode bin/run-ts.mjs bench/ns-scale.ts ${held.join(' ')}`,
          code: r2.code,
          // the first run's restart, then everything of the second (its restart lines marked _grace)
          lines: [...lines.filter((l) => l.metric.startsWith('restart_')), ...lines2.map((l) => (l.metric.startsWith('restart_') ? { ...l, metric: `${l.metric}_grace` } : l))],
          ...(r2.code !== 0 ? { error: errorOf(r2.stderr, r2.code) } : {}),
        };
        ctx.log(`  ns-scale: ${label(n, servers)} with repairs held off done (exit ${r2.code})`);
      }
      if (!noEtcd) {
        ctx.log(`  ns-promotion: ${label(n, servers)}`);
        const p = await runBench(args, ctx.log, 'ns-promotion.ts');
        run.promotion = { command: `node bin/run-ts.mjs bench/ns-promotion.ts ${args.join(' ')}`, code: p.code, lines: parseExternalLines(p.stdout), ...(p.code !== 0 ? { error: errorOf(p.stderr, p.code) } : {}) };
      }
      runs.push(run);
    }
    return { ...summarize(runs), commands: runs.flatMap((r) => [...r.command.split('\n'), ...(r.promotion ? [r.promotion.command] : [])]), data: runs };
  },
};

/** The section's figures and goals from its runs (exported: stored runs can be summed up again). */
export function summarize(runs: Run[]): Pick<SectionOutput, 'values' | 'goals'> {
  const top = [...runs].sort((a, b) => b.blocks - a.blocks)[0];
  const atGoal = top !== undefined && top.blocks >= GOAL.blocks && top.servers >= GOAL.servers;
  const goals: Goal[] = [];
  if (top) {
    const at = `, ${label(top.blocks, top.servers)}`;
    // Below the goal's configuration a figure is reported, with the goal it will be judged by.
    const goal = (id: string, name: string, target: string, v: number | undefined, shown: (v: number) => string, ok: (v: number) => boolean) =>
      goals.push({ id, name: name + at, target: atGoal ? target : `reported (goal ${target} at ${label(GOAL.blocks, GOAL.servers)})`, measured: v === undefined ? 'not measured' : shown(v), met: atGoal && v !== undefined ? ok(v) : undefined });
    const repairGoal = Number(find(top, 'repair_started')?.goal ?? Number.NaN);
    goal('heartbeat-cpu', 'name-server CPU on heartbeats', '< 25% of one core', value(top, 'ns_cpu_heartbeats'), (v) => `${v.toFixed(1)}% of one core`, (v) => v < 25);
    goal('memory', 'name-server memory per block, its copies included', '< 250 B', value(top, 'memory_per_block'), (v) => `${v.toFixed(0)} B`, (v) => v < 250);
    goal('repair-start', "a dead server's first repair, from its last heartbeat", `<= dead time + 2 s (${secs(repairGoal)})`, value(top, 'repair_started'), secs, (v) => v <= repairGoal);
    goal('assign-p99', 'assign p99 under the heartbeat load', '< 10 ms', value(top, 'assign_p99'), (v) => `${v.toFixed(1)} ms`, (v) => v < 10);
    // Serving means answering: assigns failing after the first one (the restart stalled) do not count as served.
    const failedAfter = Number(find(top, 'restart_assign_worst')?.errors ?? 0);
    goal('restart', 'name-server restart to serving assigns', '< 30 s', value(top, 'restart_first_assign'), (v) => `${secs(v)}${failedAfter > 0 ? `, then ${num(failedAfter)} assigns failed while the reports came in` : ''}`, (v) => v < 30_000 && failedAfter === 0);
    const promoted = top.promotion?.lines.find((l) => l.metric === 'promotion_first_assign');
    const promoErrors = Number(top.promotion?.lines.find((l) => l.metric === 'promotion_assign_worst')?.errors ?? 0);
    goal('promotion', 'name-server promotion (SIGKILL of the leader, 2 name servers on etcd) to the new leader serving assigns', '< 30 s', promoted && Number.isFinite(promoted.value) ? promoted.value : undefined, (v) => `${secs(v)}${promoErrors > 0 ? `, ${num(promoErrors)} assigns failed meanwhile` : ''}`, (v) => v < 30_000);
    const promoIn = top.promotion?.lines.find((l) => l.metric === 'promotion_reports_in');
    goals.push({ id: 'promotion-reports-in', name: `name-server promotion until every data server's full report is in at the new leader${at}`, target: 'reported', measured: promoIn ? (Number.isFinite(promoIn.value) ? secs(promoIn.value) : 'stalled') : 'not measured' });
    // Not measured at the goal's size: what a smaller configuration measured is said beside it.
    const smaller = [...runs].sort((a, b) => b.blocks - a.blocks).find((r) => r !== top && Number.isFinite(r.promotion?.lines.find((l) => l.metric === 'promotion_first_assign')?.value));
    if (smaller) {
      const at2 = (m: string) => secs(smaller.promotion!.lines.find((l) => l.metric === m)?.value);
      for (const [id, m] of [['promotion', 'promotion_first_assign'], ['promotion-reports-in', 'promotion_reports_in']] as const) {
        const g = goals.find((x) => x.id === id)!;
        if (g.measured === 'not measured') g.measured = `not measured at ${label(top.blocks, top.servers)}; ${at2(m)} at ${label(smaller.blocks, smaller.servers)}`;
      }
    }
    const restartIn = find(top, 'restart_reports_in');
    const inMs = restartIn && Number.isFinite(restartIn.value) ? restartIn.value : undefined;
    const held = find(top, 'restart_reports_in_grace');
    const heldText = held ? `; ${Number.isFinite(held.value) ? secs(held.value) : 'stalled again'} when restarted with --startup-grace-ms ${String(held.startupGraceMs)}` : '';
    goals.push({ id: 'reports-in', name: `name-server restart until every data server's blocks are reported${at}`, target: 'reported', measured: (inMs !== undefined ? secs(inMs) : restartIn ? `stalled (${String(restartIn.serversIn)} of ${String(restartIn.of)} in)` : 'not measured') + heldText });
    const worst = value(top, 'restart_assign_worst');
    goals.push({ id: 'restart-stall', name: `the worst assign latency while the data servers report after a restart${at}`, target: 'reported', measured: worst !== undefined ? `${(worst / 1000).toFixed(2)} s (p99 ${millis(Number(find(top, 'restart_assign_worst')?.p99))}, ${String(find(top, 'restart_assign_worst')?.errors ?? '?')} failed)` : 'not measured' });
  }
  const notes: string[] = [];
  for (const r of runs) {
    if (r.error) notes.push(`${label(r.blocks, r.servers)}: the run failed: ${r.error}.`);
    const stalled = find(r, 'restart_reports_in');
    if (stalled && !Number.isFinite(stalled.value)) {
      const held = find(r, 'restart_reports_in_grace');
      notes.push(`${label(r.blocks, r.servers)}: after the restart (the name server's defaults) the reports **stalled**: ${secs(Number(stalled.stalledAfterMs))} after it, ${String(stalled.serversIn)} of ${String(stalled.of)} servers' blocks were in and none more came for ${secs(Number(stalled.longestGapMs))}; the name server, at ${String(stalled.nsCpuPct)}% of a core, then counted ${String(stalled.aliveThen ?? '?')} data servers alive and ${num(Number(stalled.underReplicatedThen))} blocks under-replicated, and ${num(Number(stalled.failedBeats))} beats had gone unanswered (${JSON.stringify(stalled.errors)}). ` +
        (held ? `The configuration was then run again from scratch with \`--startup-grace-ms ${String(held.startupGraceMs)}\` (no repair while the reports come in; the lines marked "held off"): ${Number.isFinite(held.value) ? `every server's blocks were in after ${secs(held.value)}, and the column's other figures (heartbeats, memory, assigns, the dead server: killed so that it is declared dead as the grace ends) were measured in that run` : 'it stalled again'}.` : 'The figures after it were not measured.'));
    }
    if (r.promotion?.error) notes.push(`${label(r.blocks, r.servers)}: the promotion run failed: ${r.promotion.error}.`);
    if (r.lines.some((l) => l.protocol === 'blocks')) notes.push(`${label(r.blocks, r.servers)}: the name server did not answer \`report\`: the simulated servers sent whole lists in Heartbeat.blocks.`);
  }
  const values = {
    table: table(['', ...runs.map((r) => label(r.blocks, r.servers))], rows(runs)),
    notes: notes.join('\n\n'),
    config: top ? label(top.blocks, top.servers) : '—',
    atGoal,
    turns: String(runs[0]?.lines[0]?.fullReportsAtOnce ?? '?'),
    protocol: runs.every((r) => r.lines.every((l) => l.protocol !== 'blocks')) ? 'report' : 'blocks',
    promotion: runs.some((r) => r.promotion !== undefined),
    promotionWhyOne: PROMOTION_ONE_MEMBER,
  };
  return { values, goals };
}
