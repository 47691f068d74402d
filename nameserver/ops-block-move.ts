// Moving one copy of a block from one data server to another without ever having fewer
// copies than before: copy (the target pulls from a good holder), verify (both scrub; the
// digests of live records must match and the copy must have no bad record), wait until the
// target's heartbeat reports the copy, add the target to the block's replica set, and only
// then drop the old server from the set and delete its copy (the copy is block-copy.ts's,
// shared with repair). Rebalance, drain and verify --repair all go through here.
//
// Crash safety (the name server may be SIGKILLed at any step): before the target is added
// to the persisted set, its copy is an unrecognised extra that heartbeats delete once the
// block has its full count elsewhere; after it is added and before the old server is
// dropped, the block merely has one copy too many, which the next rebalance trims.
//
// Deletes racing the move: the block is busy ('moving'), so clients report each delete to
// the name server, which keeps it for us (takeBusyDeletes); they are applied to the new
// copy before it counts, and again at the end.
import { isUgcfsError } from '../src/base/errors.ts';
import { mayHoldFiles, type BlockRecord } from './block-map.ts';
import { applyBusyDeletes, copyBlock, copyEnvOf, deleteCopy, stopWrites } from './block-copy.ts';
import type { NameserverContext } from './context.ts';
import type { BlockClaims } from './ops-claims.ts';
import type { DataserverEntry } from './registry.ts';

export interface MoveEnv {
  ctx: NameserverContext;
  claims: BlockClaims;
  /** time one block copy may take */
  copyTimeoutMs?: number;
}

export interface MoveRequest {
  block: number;
  /** the server whose copy goes away */
  from: string;
  /** the server that gets a copy */
  to: string;
  /** the holder to copy from (default: `from` when it is a good live copy, else another holder) */
  copyFrom?: string;
}

export type MoveOutcome = { moved: true; bytes: number } | { moved: false; reason: string };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How long writes assigned to a block before it was claimed may still take to arrive. */
export const IN_FLIGHT_MS = 200;

/** Time one move's copy may take unless the operation says otherwise. */
const MOVE_COPY_TIMEOUT_MS = 600_000;

/** A live holder of the block that is a sound source: it owes no deletes in it. */
export function goodSource(ctx: NameserverContext, rec: BlockRecord, prefer?: string, avoid?: string): DataserverEntry | undefined {
  const holders = ctx.blocks.liveHolders(rec).filter((d) => !ctx.pendingDeletes.owes(d.id, rec.id));
  return holders.find((d) => d.id === prefer) ?? holders.find((d) => d.id !== avoid) ?? holders[0];
}

/**
 * Moves one copy. Returns {moved:false} without changing anything when the move no longer
 * makes sense (the block changed, is busy elsewhere, the target is down...).
 */
export async function moveBlock(env: MoveEnv, m: MoveRequest): Promise<MoveOutcome> {
  const { ctx, claims } = env;
  const rec0 = ctx.blocks.get(m.block);
  if (!rec0 || !mayHoldFiles(rec0)) return { moved: false, reason: 'block no longer exists' };
  if (!rec0.replicas.includes(m.from)) return { moved: false, reason: `block is no longer on ${m.from}` };
  if (rec0.replicas.includes(m.to)) return { moved: false, reason: `block is already on ${m.to}` };
  const target = ctx.registry.get(m.to);
  if (!target || !ctx.registry.isAlive(target)) return { moved: false, reason: `target ${m.to} is not alive` };
  const source = goodSource(ctx, rec0, m.copyFrom ?? m.from, m.copyFrom ? m.from : undefined);
  if (!source || (m.copyFrom && source.id !== m.copyFrom)) return { moved: false, reason: 'no sound live copy to copy from' };
  if (!claims.claim(m.block, 'moving')) return { moved: false, reason: `block is busy (${ctx.blocks.busyReason(m.block) ?? 'another operation'})` };
  const log = ctx.log.child({ block: m.block, from: m.from, to: m.to, source: source.id });
  try {
    // Moved blocks are sealed, as repaired ones are: a block that changes hands takes no more
    // appends, so the copy converges and the replicas never diverge mid-move.
    if (rec0.state === 'writable') {
      await ctx.blocks.setState(m.block, 'sealed');
      // Writes assigned just before the claim are on their way; let them land before the
      // holders turn read-only, or they would fail half-replicated.
      await sleep(IN_FLIGHT_MS);
    }
    const copyEnv = copyEnvOf(ctx);
    await stopWrites(copyEnv, ctx.blocks.liveHolders(rec0), m.block);
    const bytes = await copyBlock(copyEnv, {
      block: m.block,
      source,
      target,
      copyTimeoutMs: env.copyTimeoutMs ?? MOVE_COPY_TIMEOUT_MS,
      damagedSource: 'refuse',
      admit: () => ctx.blocks.addReplica(m.block, m.to),
    });

    // Only now does the old copy go: the new one is verified and counted.
    await ctx.blocks.removeReplica(m.block, m.from);
    await ctx.pendingDeletes.forgetBlock(m.from, m.block);
    const old = ctx.registry.get(m.from);
    if (old && ctx.registry.isAlive(old)) {
      // If this fails the heartbeat removes the copy later (an extra copy of a fully replicated block).
      await deleteCopy(copyEnv, old, m.block).catch((err: Error) => log.warn({ err: err.message }, 'could not delete the old copy; heartbeats will'));
    }
    // A delete whose report was in flight while we switched still reaches the new copy.
    await sleep(Math.min(500, Math.max(50, ctx.config.heartbeatMs)));
    await applyBusyDeletes(copyEnv, target, m.block);
    log.info({ bytes }, 'block moved');
    return { moved: true, bytes };
  } finally {
    claims.release(m.block);
  }
}

/**
 * Drops an extra copy of a block that has more live copies than its replica count (left by
 * a move cut short). Never goes below the count.
 */
export async function trimBlock(env: MoveEnv, block: number, drop: string): Promise<MoveOutcome> {
  const { ctx, claims } = env;
  const rec = ctx.blocks.get(block);
  if (!rec || !rec.replicas.includes(drop)) return { moved: false, reason: `block is no longer on ${drop}` };
  if (!claims.claim(block, 'moving')) return { moved: false, reason: 'block is busy' };
  try {
    const rest = ctx.blocks.liveHolders(rec).filter((d) => d.id !== drop && !ctx.pendingDeletes.owes(d.id, block));
    if (rest.length < rec.replication) return { moved: false, reason: 'not enough other copies' };
    await ctx.blocks.removeReplica(block, drop);
    await ctx.pendingDeletes.forgetBlock(drop, block);
    const ds = ctx.registry.get(drop);
    if (ds && ctx.registry.isAlive(ds)) await deleteCopy(copyEnvOf(ctx), ds, block).catch(() => undefined);
    ctx.log.info({ block, ds: drop }, 'extra copy removed');
    return { moved: true, bytes: 0 };
  } finally {
    claims.release(block);
  }
}

/**
 * Replaces a damaged copy in place (when no other server can take a copy): the bad copy is
 * deleted and pulled again from a good holder. The block's other copies serve meanwhile.
 */
export async function recopyBlock(env: MoveEnv, block: number, onto: string, from: string): Promise<MoveOutcome> {
  const { ctx, claims } = env;
  const rec = ctx.blocks.get(block);
  const target = ctx.registry.get(onto);
  const source = ctx.registry.get(from);
  if (!rec || !target || !source || !ctx.registry.isAlive(target) || !ctx.registry.isAlive(source)) return { moved: false, reason: 'holders are not alive' };
  if (!claims.claim(block, 'moving')) return { moved: false, reason: 'block is busy' };
  try {
    // Out of the replica set while it is re-copied: a half-pulled copy shows up in heartbeats
    // and must not be offered to readers. The claim keeps the repairer off meanwhile.
    await ctx.blocks.removeReplica(block, onto);
    // Readers holding a cached location may still send reads here: while the copy is gone or
    // being pulled they get BLOCK_NOT_FOUND, which sends them to the next replica.
    const copyEnv = copyEnvOf(ctx);
    await deleteCopy(copyEnv, target, block);
    ctx.blocks.removeCopy(target.id, block);
    const bytes = await copyBlock(copyEnv, {
      block,
      source,
      target,
      copyTimeoutMs: env.copyTimeoutMs ?? MOVE_COPY_TIMEOUT_MS,
      damagedSource: 'refuse',
      admit: () => ctx.blocks.addReplica(block, onto),
    });
    return { moved: true, bytes };
  } finally {
    claims.release(block);
  }
}

export function isBusyError(err: unknown): boolean {
  return isUgcfsError(err, 'UGCFS_ERR_CONFLICT');
}
