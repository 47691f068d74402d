import { loadConfig, opt } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import type { Operation } from '../../src/wire/protocol.ts';
import type { CommandModule } from '../command.ts';
import { OP_COMMAND_OPTIONS, follow, outcome, startOrAttach } from '../progress.ts';

const VERIFY_OPTIONS = {
  ...OP_COMMAND_OPTIONS,
  repair: opt.bool(false, 'replace damaged copies from good ones'),
};

interface Damage {
  block: number;
  ds: string;
  reason: string;
  records: number;
  repaired?: boolean;
  error?: string;
}

/** Damage still unrepaired after the run (exit code 1 when any). */
export function remainingDamage(op: Operation): number {
  const r = op.details?.remaining;
  return typeof r === 'number' ? r : 0;
}

function formatReport(op: Operation): string {
  const lines = [outcome(op).line];
  for (const d of (op.details?.damage ?? []) as Damage[]) {
    const what = d.records > 0 ? `${d.records} bad records (${d.reason})` : d.reason;
    const fix = d.repaired ? 'repaired' : d.error ? `NOT repaired: ${d.error}` : 'not repaired';
    lines.push(`  block ${d.block} on ${d.ds || '?'}: ${what} — ${fix}`);
  }
  return lines.join('\n') + '\n';
}

const mod: CommandModule = {
  summary: 'check every record\'s checksum on every replica; --repair mends bad copies',
  usage: `ugcfs verify [--repair] [--json] [--detach] [--nameserver URL]

Every live copy of every block checks each record's CRC32-C, and the copies of a block are
compared (digest of their live records). Damage is listed; with --repair each bad copy is
replaced from a good one (a new copy is made before the bad one is dropped when another
server can hold it). Exit code 1 when damage remains, 0 when the cluster is clean.`,
  async run(ctx) {
    const { config, positionals } = loadConfig(VERIFY_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    const json = config.json;
    let op = await startOrAttach(ctx, config, 'verify', config.repair ? { repair: true } : {});
    if (config.detach) {
      ctx.stdout.write(json ? JSON.stringify(op) + '\n' : `${op.id}\n`);
      return 0;
    }
    op = await follow(ctx, config, op, 'blocks');
    ctx.stdout.write(json ? JSON.stringify(op) + '\n' : formatReport(op));
    return outcome(op).code !== 0 || remainingDamage(op) > 0 ? 1 : 0;
  },
};
export const { summary, usage, run } = mod;
