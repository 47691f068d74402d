// Rebalance and drain: both plan block moves from the name server's current view and run
// them through moveBlock (copy, verify, add, then drop). Planning from current state is
// what makes them safe to interrupt and run again: a second run plans only what is left.
import { UgcfsError } from '../src/base/errors.ts';
import type { NameserverContext } from './context.ts';
import { planBalance, type BalancePlan, type PlanBlock, type PlanServer } from './ops-balance-plan.ts';
import { moveBlock, trimBlock, type MoveOutcome } from './ops-block-move.ts';
import { pool, type OpBody, type OpRun } from './ops-engine.ts';
import { chooseCopyTarget } from './placement.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Failures kept in an operation's details (the count is always exact). */
const MAX_LISTED = 20;
/** Moves listed in a plan's details. */
const MAX_PLAN_LISTED = 500;

export function balanceInputs(ctx: NameserverContext, now = Date.now()): { servers: PlanServer[]; blocks: PlanBlock[]; racks: Record<string, string> } {
  const servers = ctx.registry
    .alive(now)
    .filter((d) => !d.draining)
    .map((d) => ({ id: d.id, rack: d.rack, freeBytes: d.freeBytes }));
  const racks = Object.fromEntries(ctx.registry.list().map((d) => [d.id, d.rack]));
  const blocks: PlanBlock[] = ctx.blocks.all().map((rec) => {
    const hs = ctx.blocks.liveHolders(rec, now);
    const reported = hs.every((d) => d.reports.has(rec.id));
    const size = Math.max(0, ...hs.map((d) => d.reports.get(rec.id)?.size ?? 0));
    const owes = hs.some((d) => ctx.pendingDeletes.owes(d.id, rec.id));
    return {
      id: rec.id,
      replication: rec.replication,
      size,
      holders: hs.map((d) => d.id),
      // Under-replicated blocks are the repairer's; unconfirmed or owing copies are not sound sources.
      movable: reported && !owes && ctx.blocks.busyReason(rec.id) === undefined && hs.length >= rec.replication,
      writable: rec.state === 'writable',
    };
  });
  return { servers, blocks, racks };
}

export function currentBalancePlan(ctx: NameserverContext): BalancePlan {
  const { servers, blocks, racks } = balanceInputs(ctx);
  return planBalance(servers, blocks, { racks });
}

/** How far the fullest or emptiest live server is from the mean, as a share of it. */
export function imbalance(plan: BalancePlan): number {
  const loads = Object.values(plan.before);
  if (loads.length < 2 || plan.mean <= 0) return 0;
  const mean = loads.reduce((s, v) => s + v, 0) / loads.length;
  return Math.max(...loads.map((v) => Math.abs(v - mean))) / mean;
}

export function planDetails(plan: BalancePlan): Record<string, unknown> {
  return {
    moves: plan.moves.slice(0, MAX_PLAN_LISTED),
    plannedMoves: plan.moves.length,
    plannedBytes: plan.moves.reduce((s, m) => s + (m.to ? m.bytes : 0), 0),
    mean: Math.round(plan.mean),
    before: plan.before,
    after: plan.after,
  };
}

interface Tally {
  moved: number;
  skipped: number;
  failed: number;
  failures: Array<{ block: number; error: string }>;
  skips: Array<{ block: number; reason: string }>;
}

function tally(): Tally {
  return { moved: 0, skipped: 0, failed: 0, failures: [], skips: [] };
}

/** Runs one move and counts it; `retried` work (drain rounds) counts only moves as progress. */
async function runMove(run: OpRun, t: Tally, block: number, bytes: number, fn: () => Promise<MoveOutcome>, retried = false): Promise<void> {
  await run.throttle(bytes);
  let copied = 0;
  let units = retried ? 0 : 1;
  try {
    const out = await fn();
    run.env.ctx.metrics.blockMoves.inc({ kind: run.op.kind, result: out.moved ? 'ok' : 'skipped' });
    if (out.moved) {
      t.moved++;
      copied = out.bytes;
      units = 1;
    } else {
      t.skipped++;
      if (t.skips.length < MAX_LISTED) t.skips.push({ block, reason: out.reason });
    }
  } catch (err) {
    run.env.ctx.metrics.blockMoves.inc({ kind: run.op.kind, result: 'failed' });
    t.failed++;
    if (t.failures.length < MAX_LISTED) t.failures.push({ block, error: (err as Error).message });
    run.env.ctx.log.warn({ op: run.op.id, block, err: (err as Error).message }, 'block move failed');
  }
  run.detail('moved', t.moved);
  run.detail('skipped', t.skipped);
  run.detail('failed', t.failed);
  if (t.failures.length > 0) run.detail('failures', t.failures);
  if (t.skips.length > 0) run.detail('skips', t.skips);
  await run.step(copied, units);
}

function concurrencyOf(run: OpRun): number {
  const c = run.op.details?.concurrency;
  return typeof c === 'number' && c >= 1 ? c : run.settings.moveConcurrency;
}

export function rebalanceBody(): OpBody {
  return async (run) => {
    const { ctx } = run.env;
    const plan = currentBalancePlan(ctx);
    run.setTotal(plan.moves.length);
    run.detail('plan', planDetails(plan));
    const t = tally();
    await pool(plan.moves, concurrencyOf(run), () => run.stopped, (m) =>
      runMove(run, t, m.block, m.to ? m.bytes : 0, () => (m.to ? moveBlock(run.env, { block: m.block, from: m.from, to: m.to }) : trimBlock(run.env, m.block, m.from))),
    );
    const summary = `${t.moved} of ${plan.moves.length} planned moves done, ${t.skipped} skipped, ${t.failed} failed`;
    if (t.failed > 0) throw new UgcfsError('UGCFS_ERR_INTERNAL', `${summary}; run it again to retry (first failure: ${t.failures[0]?.error})`);
    return summary;
  };
}

/** Targets for a drain: alive, not draining, not already meant to hold the block. */
function drainTarget(ctx: NameserverContext, block: number, from: string, inflight: Map<string, number>) {
  const rec = ctx.blocks.get(block);
  if (!rec) return undefined;
  const others = ctx.blocks.liveHolders(rec).filter((d) => d.id !== from);
  const size = Math.max(0, ...ctx.blocks.liveHolders(rec).map((d) => d.reports.get(block)?.size ?? 0));
  const candidates = ctx.registry.alive().filter((d) => !d.draining && !rec.replicas.includes(d.id));
  return chooseCopyTarget(candidates, others, { needBytes: size, load: inflight, jitter: 0 });
}

export function drainPlan(ctx: NameserverContext, dsId: string): Array<{ block: number; from: string; to?: string; bytes: number }> {
  const inflight = new Map<string, number>();
  return ctx.blocks
    .all()
    .filter((r) => r.replicas.includes(dsId))
    .map((r) => {
      const to = drainTarget(ctx, r.id, dsId, inflight);
      if (to) inflight.set(to.id, (inflight.get(to.id) ?? 0) + 1);
      const bytes = ctx.registry.get(dsId)?.reports.get(r.id)?.size ?? 0;
      return { block: r.id, from: dsId, ...(to ? { to: to.id } : {}), bytes };
    });
}

export function drainBody(dsId: string): OpBody {
  return async (run) => {
    const { ctx } = run.env;
    // Persisted: a draining server gets no new blocks, and blocks it holds take no writes.
    await ctx.registry.setDraining(dsId, true);
    const t = tally();
    let stale = 0;
    while (!run.stopped) {
      const left = ctx.blocks.all().filter((r) => r.replicas.includes(dsId)).map((r) => r.id);
      run.setTotal(t.moved + left.length);
      if (left.length === 0) break;
      const movedBefore = t.moved;
      const inflight = new Map<string, number>();
      await pool(left, concurrencyOf(run), () => run.stopped, async (block) => {
        const to = drainTarget(ctx, block, dsId, inflight);
        const bytes = ctx.registry.get(dsId)?.reports.get(block)?.size ?? 0;
        if (!to) {
          await runMove(run, t, block, 0, async () => ({ moved: false, reason: 'no live data server can take a copy (racks, space)' }), true);
          return;
        }
        inflight.set(to.id, (inflight.get(to.id) ?? 0) + 1);
        try {
          await runMove(run, t, block, bytes, () => moveBlock(run.env, { block, from: dsId, to: to.id }), true);
        } finally {
          inflight.set(to.id, (inflight.get(to.id) ?? 1) - 1);
        }
      });
      // Blocks that were busy (being repaired, compacted) are tried again; give up only when
      // several rounds in a row move nothing.
      stale = t.moved === movedBefore ? stale + 1 : 0;
      if (stale >= 5) break;
      await sleep(300 * stale);
    }
    const left = ctx.blocks.all().filter((r) => r.replicas.includes(dsId)).length;
    run.detail('remaining', left);
    const summary = `${t.moved} blocks moved off ${dsId}, ${left} left`;
    if (left > 0 && !run.stopped) {
      const why = t.failures[0]?.error ?? t.skips[t.skips.length - 1]?.reason ?? 'unknown';
      throw new UgcfsError('UGCFS_ERR_INTERNAL', `${summary} (last reason: ${why}); run it again to retry`);
    }
    return left === 0 ? `${summary}; it holds no blocks and takes no writes` : summary;
  };
}
