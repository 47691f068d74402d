import { loadConfig, opt } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import type { Operation } from '../../src/wire/protocol.ts';
import type { CommandModule } from '../command.ts';
import { OP_COMMAND_OPTIONS, follow, formatBytes, outcome, postOperation, startOrAttach } from '../progress.ts';

export const MOVE_OPTIONS = {
  ...OP_COMMAND_OPTIONS,
  concurrency: opt.int(0, 'block moves at the same time (0: the name server\'s setting)', { min: 0, max: 64 }),
  bytesPerSec: opt.int(0, 'copy rate limit in bytes per second, e.g. 50M (0: the name server\'s setting)', { min: 0 }),
  dryRun: opt.bool(false, 'print the plan; change nothing'),
};

interface PlannedMove {
  block: number;
  from: string;
  to?: string;
  bytes: number;
}

interface PlanDetails {
  moves?: PlannedMove[];
  plannedMoves?: number;
  before?: Record<string, number>;
  after?: Record<string, number>;
  mean?: number;
}

/** Used bytes per server before and after the plan. */
function formatLoads(d: PlanDetails): string[] {
  if (!d.before || !d.after) return [];
  const lines = [`${'DATA SERVER'.padEnd(16)} ${'BEFORE'.padStart(10)} ${'AFTER'.padStart(10)}   (mean ${formatBytes(d.mean ?? 0)})`];
  for (const id of Object.keys(d.before).sort()) lines.push(`${id.padEnd(16)} ${formatBytes(d.before[id]!).padStart(10)} ${formatBytes(d.after[id] ?? 0).padStart(10)}`);
  return lines;
}

/** The plan as text: one line per move, then used bytes per server before and after. */
export function formatPlan(d: PlanDetails): string {
  const moves = d.moves ?? [];
  const lines = [`${d.plannedMoves ?? moves.length} moves planned`];
  for (const m of moves) lines.push(m.to ? `  block ${m.block}: ${m.from} -> ${m.to}  ${formatBytes(m.bytes)}` : `  block ${m.block}: drop the extra copy on ${m.from}`);
  const loads = formatLoads(d);
  if (loads.length > 0) lines.push('', ...loads);
  return lines.join('\n') + '\n';
}

function formatResult(op: Operation): string {
  const o = outcome(op);
  const lines = [o.line];
  const fails = (op.details?.failures ?? []) as Array<{ block: number; error: string }>;
  for (const f of fails) lines.push(`  block ${f.block}: ${f.error}`);
  lines.push(...formatLoads((op.details?.plan ?? {}) as PlanDetails));
  return lines.join('\n') + '\n';
}

export function moveBody(config: { concurrency: number; bytesPerSec: number }): Record<string, unknown> {
  return { ...(config.concurrency > 0 ? { concurrency: config.concurrency } : {}), ...(config.bytesPerSec > 0 ? { bytesPerSec: config.bytesPerSec } : {}) };
}

const mod: CommandModule = {
  summary: 'even out used bytes across live data servers (moves block copies)',
  usage: `ugcfs rebalance [--dry-run] [--json] [--detach] [--concurrency N] [--bytes-per-sec N] [--nameserver URL]

The name server plans moves that even out used bytes across live data servers (replicas
stay on distinct servers and racks; a copy is dropped only after its replacement is
verified) and runs them. --dry-run prints the plan and changes nothing. The operation runs
on the name server: Ctrl-C stops watching, not the work; running it again follows it, or,
after it was interrupted, plans what is left. --detach prints the operation id and returns.`,
  async run(ctx) {
    const { config, positionals } = loadConfig(MOVE_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    const json = config.json;
    if (config.dryRun) {
      const plan = await postOperation(config, { kind: 'rebalance', dryRun: true });
      ctx.stdout.write(json ? JSON.stringify(plan) + '\n' : formatPlan((plan.details ?? {}) as PlanDetails));
      return 0;
    }
    let op = await startOrAttach(ctx, config, 'rebalance', moveBody(config));
    if (config.detach) {
      ctx.stdout.write(json ? JSON.stringify(op) + '\n' : `${op.id}\n`);
      return 0;
    }
    op = await follow(ctx, config, op, 'moves');
    ctx.stdout.write(json ? JSON.stringify(op) + '\n' : formatResult(op));
    return outcome(op).code;
  },
};
export const { summary, usage, run } = mod;
