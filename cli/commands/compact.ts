import { loadConfig, opt } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import type { CommandModule } from '../command.ts';
import { OP_COMMAND_OPTIONS, follow, formatBytes, outcome, startOrAttach } from '../progress.ts';

const COMPACT_OPTIONS = {
  ...OP_COMMAND_OPTIONS,
  threshold: opt.number(0.1, 'compact block copies whose deleted share is at least this (0 < t <= 1)', { min: 0.000001, max: 1 }),
};

const mod: CommandModule = {
  summary: 'reclaim space of deleted files (compact blocks past a deleted share)',
  usage: `ugcfs compact [--threshold 0.1] [--json] [--detach] [--nameserver URL]

Each data server rewrites its copies of blocks whose deleted share (deleted records and
tombstones over the block file) is at least the threshold, one block per server at a time.
Reads go on; writes go to other blocks meanwhile. The name server also compacts by itself
on an interval.`,
  async run(ctx) {
    const { config, positionals } = loadConfig(COMPACT_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    const json = config.json;
    let op = await startOrAttach(ctx, config, 'compact', { threshold: config.threshold });
    if (config.detach) {
      ctx.stdout.write(json ? JSON.stringify(op) + '\n' : `${op.id}\n`);
      return 0;
    }
    op = await follow(ctx, config, op, 'block copies');
    const o = outcome(op);
    const reclaimed = Number(op.details?.reclaimedBytes ?? op.bytesDone);
    ctx.stdout.write(json ? JSON.stringify(op) + '\n' : `${o.line}\nreclaimed ${formatBytes(reclaimed)}\n`);
    const failed = Number(op.details?.failed ?? 0);
    return o.code !== 0 || failed > 0 ? 1 : 0;
  },
};
export const { summary, usage, run } = mod;
