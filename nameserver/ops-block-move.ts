// Moving one copy of a block from one data server to another without ever having fewer
// copies than before: copy (the target pulls from a good holder), verify (both scrub; the
// digests of live records must match and the copy must have no bad record), add the target
// to the block's replica set, wait until its heartbeat reports the copy, and only then drop
// the old server from the set and delete its copy. Rebalance, drain and verify --repair all
// go through here.
//
// Crash safety (the name server may be SIGKILLed at any step): before the target is added
// to the persisted set, its copy is an unrecognised extra that heartbeats delete once the
// block has its full count elsewhere; after it is added and before the old server is
// dropped, the block merely has one copy too many, which the next rebalance trims.
//
// Deletes racing the move: the block is busy ('moving'), so clients report each delete to
// the name server, which keeps it for us (takeBusyDeletes); they are applied to the new
// copy before it counts, and again at the end.
import { UgcfsError, isUgcfsError } from '../src/errors.ts';
import { callJson, callRaw } from '../src/http-client.ts';
import { DS_ROUTES, type ScrubResult } from '../src/protocol.ts';
import { mayHoldFiles, type BlockRecord } from './block-map.ts';
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

function blockUrl(ds: DataserverEntry, route: string, block: number): string {
  return ds.url + route.replace(':id', String(block));
}

/** How often a call in progress checks that its server is still alive. */
const LIVENESS_POLL_MS = 250;

/**
 * A block command to a data server (scrub, pull, compact, read-only), given up
 * (UGCFS_ERR_UNAVAILABLE) when a server alive at the start is declared dead during the call:
 * a server that hangs without dying would otherwise keep the caller, and the block's claim
 * that holds its writes and repair off, waiting for the whole timeout (up to 30 min).
 */
export async function dsPost<T>(ctx: NameserverContext, ds: DataserverEntry, route: string, block: number, body: unknown, timeoutMs: number): Promise<T> {
  const alive = () => {
    const e = ctx.registry.get(ds.id);
    return e !== undefined && ctx.registry.isAlive(e);
  };
  const stop = new AbortController();
  const watch = alive()
    ? setInterval(() => {
        if (!alive()) stop.abort();
      }, LIVENESS_POLL_MS)
    : undefined;
  try {
    return await callJson<T>(blockUrl(ds, route, block), { method: 'POST', body, secret: ctx.config.clusterSecret, timeoutMs, signal: stop.signal });
  } catch (err) {
    if (stop.signal.aborted) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `data server ${ds.id} was declared dead during the ${route.split('/').pop()} of block ${block}`);
    throw err;
  } finally {
    clearInterval(watch);
  }
}

/** Deletes a server's copy; a copy that is already gone is fine. */
export async function deleteCopy(ctx: NameserverContext, ds: DataserverEntry, block: number): Promise<void> {
  const res = await callRaw(blockUrl(ds, DS_ROUTES.block, block), { method: 'DELETE', secret: ctx.config.clusterSecret, timeoutMs: 30_000 });
  if (res.status === 404 || (res.status >= 200 && res.status < 300)) return;
  throw new UgcfsError('UGCFS_ERR_UPSTREAM', `deleting block ${block} on ${ds.id} answered HTTP ${res.status}`);
}

export function scrub(ctx: NameserverContext, ds: DataserverEntry, block: number, timeoutMs = 600_000): Promise<ScrubResult> {
  return dsPost<ScrubResult>(ctx, ds, DS_ROUTES.blockScrub, block, {}, timeoutMs);
}

/** Applies deletes clients reported during the move to the new copy; what cannot be applied now is left to the pending-delete replay. */
async function applyBusyDeletes(ctx: NameserverContext, target: DataserverEntry, block: number): Promise<void> {
  for (const fid of ctx.blocks.takeBusyDeletes(block)) {
    try {
      const res = await callRaw(target.url + DS_ROUTES.needle.replace(':fid', fid), { method: 'DELETE', secret: ctx.config.clusterSecret, timeoutMs: 10_000 });
      if (res.status === 404 || (res.status >= 200 && res.status < 300)) continue;
    } catch {
      // fall through to the replay
    }
    await ctx.pendingDeletes.add(target.id, fid, block);
  }
}

/** Waits until the server's heartbeat lists the block (so it counts as a live holder). */
async function waitReported(ctx: NameserverContext, id: string, block: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ds = ctx.registry.get(id);
    if (ds && ctx.registry.isAlive(ds) && ds.reports.has(block)) return true;
    if (Date.now() > deadline) return false;
    await sleep(Math.min(100, Math.max(10, ctx.config.heartbeatMs / 4)));
  }
}

/** A live holder of the block that is a sound source: it owes no deletes in it. */
export function goodSource(ctx: NameserverContext, rec: BlockRecord, prefer?: string, avoid?: string): DataserverEntry | undefined {
  const holders = ctx.blocks.liveHolders(rec).filter((d) => !ctx.pendingDeletes.owes(d.id, rec.id));
  return holders.find((d) => d.id === prefer) ?? holders.find((d) => d.id !== avoid) ?? holders[0];
}

/**
 * Copies `block` onto `target` from `source` and checks the copy. On any failure the
 * partial copy is removed and the error thrown. The caller holds the block's claim.
 */
async function copyAndVerify(env: MoveEnv, rec: BlockRecord, source: DataserverEntry, target: DataserverEntry): Promise<number> {
  const { ctx } = env;
  const block = rec.id;
  if (target.reports.has(block)) await deleteCopy(ctx, target, block);
  const res = await dsPost<{ bytes?: number }>(ctx, target, DS_ROUTES.blockPull, block, { from: source.url }, env.copyTimeoutMs ?? 600_000);
  try {
    for (let round = 0; ; round++) {
      await applyBusyDeletes(ctx, target, block);
      const [a, b] = await Promise.all([scrub(ctx, source, block), scrub(ctx, target, block)]);
      if (a.bad.length > 0) throw new UgcfsError('UGCFS_ERR_CHECKSUM', `block ${block}: the source ${source.id} has ${a.bad.length} damaged records`);
      if (b.bad.length === 0 && a.digest === b.digest) break;
      // A delete landing between the two scrubs differs them for a moment; damage does not go away.
      if (round >= 3) throw new UgcfsError('UGCFS_ERR_CHECKSUM', `block ${block}: the copy on ${target.id} does not match ${source.id} (${b.bad.length} bad records)`);
      await sleep(100 * (round + 1));
    }
  } catch (err) {
    await deleteCopy(ctx, target, block).catch(() => undefined);
    throw err;
  }
  return res?.bytes ?? 0;
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
    const holders = ctx.blocks.liveHolders(rec0);
    await Promise.allSettled(holders.map((h) => dsPost(ctx, h, DS_ROUTES.blockReadonly, m.block, { readonly: true }, 5000)));
    const bytes = await copyAndVerify(env, rec0, source, target);

    await ctx.blocks.addReplica(m.block, m.to);
    const waitMs = Math.max(5000, ctx.config.heartbeatMs * 5);
    if (!(await waitReported(ctx, m.to, m.block, waitMs))) {
      // The copy never showed up in a heartbeat; it cannot count, so undo.
      await ctx.blocks.removeReplica(m.block, m.to);
      await deleteCopy(ctx, target, m.block).catch(() => undefined);
      throw new UgcfsError('UGCFS_ERR_TIMEOUT', `block ${m.block}: ${m.to} did not report the new copy within ${waitMs} ms`);
    }
    await applyBusyDeletes(ctx, target, m.block);

    // Only now does the old copy go: the new one is verified and counted.
    await ctx.blocks.removeReplica(m.block, m.from);
    await ctx.pendingDeletes.forgetBlock(m.from, m.block);
    const old = ctx.registry.get(m.from);
    if (old && ctx.registry.isAlive(old)) {
      // If this fails the heartbeat removes the copy later (an extra copy of a fully replicated block).
      await deleteCopy(ctx, old, m.block).catch((err: Error) => log.warn({ err: err.message }, 'could not delete the old copy; heartbeats will'));
    }
    // A delete whose report was in flight while we switched still reaches the new copy.
    await sleep(Math.min(500, Math.max(50, ctx.config.heartbeatMs)));
    await applyBusyDeletes(ctx, target, m.block);
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
    if (ds && ctx.registry.isAlive(ds)) await deleteCopy(ctx, ds, block).catch(() => undefined);
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
    await deleteCopy(ctx, target, block);
    target.reports.delete(block);
    const bytes = await copyAndVerify(env, rec, source, target);
    await ctx.blocks.addReplica(block, onto);
    if (!(await waitReported(ctx, onto, block, Math.max(5000, ctx.config.heartbeatMs * 5)))) {
      throw new UgcfsError('UGCFS_ERR_TIMEOUT', `block ${block}: ${onto} did not report the new copy`);
    }
    await applyBusyDeletes(ctx, target, block);
    return { moved: true, bytes };
  } finally {
    claims.release(block);
  }
}

export function isBusyError(err: unknown): boolean {
  return isUgcfsError(err, 'UGCFS_ERR_CONFLICT');
}
