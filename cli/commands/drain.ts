import { loadConfig, opt } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import type { CommandModule } from '../command.ts';
import { follow, formatBytes, outcome, postOperation, startOrAttach } from '../progress.ts';
import { MOVE_OPTIONS, moveBody } from './rebalance.ts';

const DRAIN_OPTIONS = {
  ...MOVE_OPTIONS,
  undo: opt.bool(false, 'return the server to service instead'),
};

const ID = /^[A-Za-z0-9_.-]{1,128}$/;

const mod: CommandModule = {
  summary: 'move every block off one data server (it takes no new writes)',
  usage: `ugcfs drain DATASERVER_ID [--dry-run] [--json] [--detach] [--concurrency N] [--bytes-per-sec N] [--nameserver URL]
ugcfs drain --undo DATASERVER_ID

Marks the data server draining (no new blocks, its blocks take no writes) and moves every
block copy it holds to other live servers, each copy verified before the old one is
dropped. Ends with 0 blocks there and full replication elsewhere; the server can then be
stopped. The operation runs on the name server: Ctrl-C stops watching, not the work.
--undo returns the server to service (stopping a running drain of it); blocks already
moved stay where they are (a rebalance brings some back).`,
  async run(ctx) {
    const { config, positionals } = loadConfig(DRAIN_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length !== 1) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'drain takes exactly one data server id (see ugcfs status)');
    const id = positionals[0]!;
    if (!ID.test(id)) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${JSON.stringify(id.slice(0, 40))} is not a data server id`);
    const json = config.json;
    if (config.undo) {
      const undone = await postOperation(config, { kind: 'drain', dataserver: id, undo: true });
      ctx.stdout.write(json ? JSON.stringify(undone) + '\n' : `${undone.message}\n`);
      return 0;
    }
    if (config.dryRun) {
      const plan = await postOperation(config, { kind: 'drain', dataserver: id, dryRun: true });
      if (json) ctx.stdout.write(JSON.stringify(plan) + '\n');
      else {
        const moves = (plan.details?.moves ?? []) as Array<{ block: number; from: string; to?: string; bytes: number }>;
        const lines = [`${moves.length} block copies to move off ${id}`];
        for (const m of moves) lines.push(`  block ${m.block}: ${m.from} -> ${m.to ?? '(no server can take it now)'}  ${formatBytes(m.bytes)}`);
        ctx.stdout.write(lines.join('\n') + '\n');
      }
      return 0;
    }
    let op = await startOrAttach(ctx, config, 'drain', { dataserver: id, ...moveBody(config) });
    if (config.detach) {
      ctx.stdout.write(json ? JSON.stringify(op) + '\n' : `${op.id}\n`);
      return 0;
    }
    op = await follow(ctx, config, op, 'blocks');
    const o = outcome(op);
    ctx.stdout.write(json ? JSON.stringify(op) + '\n' : o.line + '\n');
    return o.code;
  },
};
export const { summary, usage, run } = mod;
