// The one way the name server makes a new copy of a block on a data server; repair
// (repair.ts) and moves (ops-block-move.ts: rebalance, drain, verify --repair) all copy
// through copyBlock, with every safeguard:
// - liveness: the pull (and each scrub) is given up as soon as the target or the source is
//   declared dead (nameserver/dataservers.ts), rather than holding the block for the whole
//   copy timeout;
// - digest check: source and copy both scrub; the copy must have no bad record and the same
//   digest over its live records as the source — else the partial copy is removed;
// - counted only once reported: the target joins the block's replica set (`admit`) once its
//   heartbeat lists the copy (the block is busy meanwhile, so heartbeats leave the not yet
//   counted copy alone); a copy never reported is removed;
// - deletes that raced the copy (the block is busy, so clients report each delete to the
//   name server, which keeps it: takeBusyDeletes) are applied to the new copy, or left owed
//   to it (pending deletes) when they cannot be applied now.
import { UgcfsError } from '../src/base/errors.ts';
import type { DataserverClient } from '../src/clients/dataserver-client.ts';
import type { Logger } from '../src/base/log.ts';
import type { BlockMap } from './block-map.ts';
import { dataserversOf } from './dataservers.ts';
import type { NameserverContext } from './context.ts';
import type { PendingDeletes } from './pending-deletes.ts';
import type { DataserverEntry, Registry } from './registry.ts';

export interface BlockCopyEnv {
  registry: Registry;
  blocks: BlockMap;
  pending: PendingDeletes;
  /** the name server's data-server client (with the liveness watch) */
  dataservers: DataserverClient;
  /** the data servers' heartbeat interval: how long a new copy may take to be reported */
  heartbeatMs: number;
  log: Logger;
}

export function copyEnvOf(ctx: NameserverContext): BlockCopyEnv {
  return { registry: ctx.registry, blocks: ctx.blocks, pending: ctx.pendingDeletes, dataservers: dataserversOf(ctx), heartbeatMs: ctx.config.heartbeatMs, log: ctx.log };
}

export interface BlockCopy {
  block: number;
  /** a live holder to copy from */
  source: DataserverEntry;
  /** the server that gets the copy */
  target: DataserverEntry;
  /** how long the pull may take, ms */
  copyTimeoutMs: number;
  /**
   * What a source with damaged records means: 'refuse' (a move: the old copy stays, verify
   * replaces the damaged one first), or 'copy' (a repair: a block short of copies is better
   * off with a second copy of what survives; the copy must then match it, damage and all).
   */
  damagedSource: 'refuse' | 'copy';
  /** makes the verified, reported copy count (adds the target to the block's replica set) */
  admit(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Copies the block onto the target, checks the copy, waits until it is reported and admits
 * it. Returns the bytes copied. On any failure before `admit` the copy is removed and the
 * error thrown. The caller holds the block's claim (or busy mark).
 */
export async function copyBlock(env: BlockCopyEnv, c: BlockCopy): Promise<number> {
  const { block, source, target } = c;
  // A leftover copy there (e.g. a pull cut short by a crash) is not a counted copy; clear it.
  if (target.reports.has(block)) await deleteCopy(env, target, block);
  const res = await env.dataservers.pullBlock(target, block, source, { timeoutMs: c.copyTimeoutMs });
  try {
    for (let round = 0; ; round++) {
      await applyBusyDeletes(env, target, block);
      const [a, b] = await Promise.all([env.dataservers.scrub(source, block), env.dataservers.scrub(target, block)]);
      if (a.bad.length > 0 && c.damagedSource === 'refuse') throw new UgcfsError('UGCFS_ERR_CHECKSUM', `block ${block}: the source ${source.id} has ${a.bad.length} damaged records`);
      if (b.bad.length <= (c.damagedSource === 'copy' ? a.bad.length : 0) && a.digest === b.digest) break;
      // A delete landing between the two scrubs differs them for a moment; damage does not go away.
      if (round >= 3) throw new UgcfsError('UGCFS_ERR_CHECKSUM', `block ${block}: the copy on ${target.id} does not match ${source.id} (${b.bad.length} bad records)`);
      await sleep(100 * (round + 1));
    }
    const waitMs = Math.max(5000, env.heartbeatMs * 5);
    if (!(await waitReported(env, target.id, block, waitMs))) {
      throw new UgcfsError('UGCFS_ERR_TIMEOUT', `block ${block}: ${target.id} did not report the new copy within ${waitMs} ms`);
    }
  } catch (err) {
    await deleteCopy(env, target, block).catch(() => undefined);
    throw err;
  }
  await c.admit();
  await applyBusyDeletes(env, target, block);
  return res?.bytes ?? 0;
}

/** Stops appends on the holders so that a copy converges (best effort: a dead holder is skipped). */
export async function stopWrites(env: BlockCopyEnv, holders: readonly DataserverEntry[], block: number): Promise<void> {
  await Promise.allSettled(holders.map((h) => env.dataservers.setReadonly(h, block, true)));
}

/** Deletes a server's copy; a copy that is already gone is fine. */
export async function deleteCopy(env: Pick<BlockCopyEnv, 'dataservers'>, ds: DataserverEntry, block: number): Promise<void> {
  await env.dataservers.deleteBlock(ds, block);
}

/** Applies deletes clients reported during the copy to the new copy; what cannot be applied now is left to the pending-delete replay. */
export async function applyBusyDeletes(env: BlockCopyEnv, target: DataserverEntry, block: number): Promise<void> {
  for (const fid of env.blocks.takeBusyDeletes(block)) {
    try {
      await env.dataservers.deleteNeedle(target, fid);
      continue;
    } catch {
      // fall through to the replay
    }
    await env.pending.add(target.id, fid, block);
  }
}

/** Waits until the server's heartbeat lists the block (so it counts as a live holder). */
export async function waitReported(env: BlockCopyEnv, id: string, block: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ds = env.registry.get(id);
    if (ds && env.registry.isAlive(ds) && ds.reports.has(block)) return true;
    if (Date.now() > deadline) return false;
    await sleep(Math.min(100, Math.max(10, env.heartbeatMs / 4)));
  }
}
