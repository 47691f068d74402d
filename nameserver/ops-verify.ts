// verify: every live copy of every block scrubs itself (each record's CRC32-C), and the
// copies' digests over their live records are compared. A copy with bad records, or one
// outvoted by the other copies' digest, is damaged. With repair, a damaged copy is replaced
// from a sound one: onto a server that holds no copy when there is one (the block never has
// fewer copies than before), else in place.
// Copies whose digests differ with no bad record anywhere are compared key by key instead
// (ops-key-reconcile.ts): a half-applied delete or write is named, and with repair settled
// by the rules there (deletes win, else the union of live records), then re-scrubbed.
import { isUgcfsError } from '../src/base/errors.ts';
import type { ScrubResult } from '../src/wire/protocol.ts';
import type { NameserverContext } from './context.ts';
import { dataserversOf } from './dataservers.ts';
import { IN_FLIGHT_MS, moveBlock, recopyBlock } from './ops-block-move.ts';
import { pool, type OpBody, type OpRun } from './ops-engine.ts';
import { applyFix, describeFix, fetchKeys, planKeyFixes, type KeyPlan } from './ops-key-reconcile.ts';
import { chooseCopyTarget } from './placement.ts';
import type { DataserverEntry } from './registry.ts';

export interface Damage {
  block: number;
  ds: string;
  /** 'crc', 'missing', 'index-mismatch'... from scrub; 'digest-mismatch' when outvoted; 'replicas-disagree' when no majority;
   *  'keys-differ (...)' naming the keys when copies differ only by half-applied deletes or writes */
  reason: string;
  /** for keys-differ: keys to delete on this copy, and keys to copy onto it */
  deleteKeys?: string[];
  copyKeys?: string[];
  records: number;
  repaired?: boolean;
  error?: string;
}

const MAX_LISTED = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Checked {
  holder: DataserverEntry;
  result?: ScrubResult;
  error?: string;
  /** the copy was not there to scrub (moved or dropped under us): not damage */
  gone?: boolean;
}

async function scrubAll(ctx: NameserverContext, holders: DataserverEntry[], block: number): Promise<Checked[]> {
  const results = await Promise.allSettled(holders.map((h) => dataserversOf(ctx).scrub(h, block)));
  return results.map((r, i) =>
    r.status === 'fulfilled' ? { holder: holders[i]!, result: r.value } : { holder: holders[i]!, error: (r.reason as Error).message, gone: isUgcfsError(r.reason, 'UGCFS_ERR_BLOCK_NOT_FOUND') },
  );
}

/** Waits (briefly) for a block that another operation or the repairer is working on. */
async function waitIdle(ctx: NameserverContext, block: number, run: OpRun): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (ctx.blocks.busyReason(block) !== undefined) {
    if (run.stopped || Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Finds the damaged copies of one block; `good` are the sound holders in the majority. */
export async function checkBlock(
  ctx: NameserverContext,
  block: number,
): Promise<{ damage: Damage[]; good: DataserverEntry[]; checked: number; records: number; plan?: KeyPlan }> {
  const rec = ctx.blocks.get(block);
  if (!rec) return { damage: [], good: [], checked: 0, records: 0 };
  const holders = ctx.blocks.liveHolders(rec);
  let checked = await scrubAll(ctx, holders, block);
  const damage: Damage[] = [];
  const sound = () => checked.filter((c) => c.result && c.result.bad.length === 0 && !ctx.pendingDeletes.owes(c.holder.id, block));
  const groups = () => {
    const g = new Map<string, DataserverEntry[]>();
    for (const c of sound()) g.set(c.result!.digest, [...(g.get(c.result!.digest) ?? []), c.holder]);
    return [...g.values()].sort((a, b) => b.length - a.length);
  };
  if (groups().length > 1) {
    // A delete landing between two scrubs differs them for a moment; look again before judging.
    await sleep(300);
    checked = await scrubAll(ctx, holders, block);
  }
  for (const c of checked) {
    if (c.error !== undefined) {
      // A copy that vanished under us (moved, dropped) is not damage; an unreadable one is.
      if (!c.gone) damage.push({ block, ds: c.holder.id, reason: 'scrub-failed', records: 0, error: c.error });
    } else if (c.result!.bad.length > 0) {
      damage.push({ block, ds: c.holder.id, reason: c.result!.bad[0]!.reason, records: c.result!.bad.length });
    }
  }
  const g = groups();
  let good = g[0] ?? [];
  const plan = g.length > 1 && damage.length === 0 ? await keyPlan(ctx, block, sound().map((c) => c.holder)) : undefined;
  if (plan) {
    good = [];
    for (const f of plan.fixes) {
      damage.push({ block, ds: f.ds.id, reason: describeFix(f), records: 0, deleteKeys: f.deletes.map((k) => k.key), copyKeys: f.copies.map((c) => c.state.key) });
    }
  } else if (g.length > 1) {
    if (g[0]!.length > g[1]!.length) {
      for (const minority of g.slice(1)) for (const h of minority) damage.push({ block, ds: h.id, reason: 'digest-mismatch', records: 0 });
    } else {
      good = [];
      for (const grp of g) for (const h of grp) damage.push({ block, ds: h.id, reason: 'replicas-disagree', records: 0 });
    }
  }
  const records = Math.max(0, ...checked.map((c) => c.result?.records ?? 0));
  return { damage, good, checked: checked.length, records, plan };
}

/** The key-by-key fixes for copies that differ, or undefined when the rules cannot settle it all. */
async function keyPlan(ctx: NameserverContext, block: number, holders: DataserverEntry[]): Promise<KeyPlan | undefined> {
  try {
    const lists = await Promise.all(holders.map(async (ds) => ({ ds, keys: await fetchKeys(ctx, ds, block) })));
    const plan = planKeyFixes(lists);
    if (plan.conflicts.length > 0) ctx.log.warn({ block, conflicts: plan.conflicts.slice(0, 10) }, 'copies differ in ways key reconciliation cannot settle');
    return plan.conflicts.length === 0 && plan.fixes.length > 0 ? plan : undefined;
  } catch (err) {
    ctx.log.warn({ block, err: (err as Error).message }, 'could not list the keys of every copy');
    return undefined;
  }
}

/** Applies a key plan, then scrubs again: the copies count as repaired only when their digests agree. */
async function reconcileKeys(ctx: NameserverContext, block: number, plan: KeyPlan, damage: Damage[]): Promise<void> {
  for (const f of plan.fixes) {
    const d = damage.find((x) => x.ds === f.ds.id && x.reason.startsWith('keys-differ'));
    try {
      await applyFix(ctx, block, f);
    } catch (err) {
      if (d) d.error = isUgcfsError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
    }
  }
  const again = await checkBlock(ctx, block);
  for (const f of plan.fixes) {
    const d = damage.find((x) => x.ds === f.ds.id && x.reason.startsWith('keys-differ'));
    if (!d || d.error !== undefined) continue;
    if (again.damage.length === 0) d.repaired = true;
    else d.error = `copies still differ after reconciling: ${again.damage.map((x) => `${x.ds} ${x.reason}`).join('; ')}`;
  }
}

async function repairCopy(run: OpRun, d: Damage, good: DataserverEntry[]): Promise<void> {
  const { ctx } = run.env;
  const source = good[0];
  if (!source) {
    d.error = 'no sound copy to repair from';
    return;
  }
  const rec = ctx.blocks.get(d.block);
  if (!rec) return;
  const holders = ctx.blocks.liveHolders(rec).filter((h) => h.id !== d.ds);
  const size = source.reports.get(d.block)?.size ?? 0;
  const candidates = ctx.registry.alive().filter((x) => !x.draining && !rec.replicas.includes(x.id) && !x.reports.has(d.block));
  const target = chooseCopyTarget(candidates, holders, { needBytes: size, jitter: 0 });
  // Under the same byte rate as rebalance and drain moves (--move-bytes-per-sec, or the
  // operation's bytesPerSec): an automatic verify must not flood the servers it repairs.
  await run.throttle(size);
  try {
    const out = target
      ? await moveBlock(run.env, { block: d.block, from: d.ds, to: target.id, copyFrom: source.id })
      : await recopyBlock(run.env, d.block, d.ds, source.id);
    run.env.ctx.metrics.blockMoves.inc({ kind: 'verify', result: out.moved ? 'ok' : 'skipped' });
    if (out.moved) {
      d.repaired = true;
      run.env.ctx.log.info({ block: d.block, bad: d.ds, from: source.id, to: target?.id ?? d.ds }, 'damaged copy replaced');
    } else d.error = out.reason;
  } catch (err) {
    d.error = isUgcfsError(err) ? `${err.code}: ${err.message}` : (err as Error).message;
  }
}

export function verifyBody(repair: boolean): OpBody {
  return async (run) => {
    const { ctx } = run.env;
    const blocks = ctx.blocks.all().map((r) => r.id);
    run.setTotal(blocks.length);
    const damage: Damage[] = [];
    let replicas = 0;
    let records = 0;
    const publish = () => {
      run.detail('damaged', damage.length);
      run.detail('repaired', damage.filter((d) => d.repaired).length);
      run.detail('remaining', damage.filter((d) => !d.repaired).length);
      run.detail('replicasChecked', replicas);
      run.detail('records', records);
      run.detail('damage', damage.slice(0, MAX_LISTED));
    };
    publish();
    await pool(blocks, 2, () => run.stopped, async (block) => {
      if (!(await waitIdle(ctx, block, run))) {
        damage.push({ block, ds: '', reason: 'not-checked', records: 0, error: 'block stayed busy' });
      } else {
        // A block taking writes would differ between two scrubs; hold its writes off (they go
        // to other blocks) while its copies are compared.
        const rec = ctx.blocks.get(block);
        const held = rec !== undefined && ctx.blocks.isWritable(rec) && run.env.claims.claim(block, 'verifying');
        let found;
        try {
          if (held) await sleep(IN_FLIGHT_MS);
          found = await checkBlock(ctx, block);
          // Reconciled while writes are still held, so the re-scrub compares settled copies.
          if (repair && found.plan) await reconcileKeys(ctx, block, found.plan, found.damage);
        } finally {
          if (held) run.env.claims.release(block);
        }
        replicas += found.checked;
        records += found.records;
        damage.push(...found.damage);
        if (repair && !found.plan) for (const d of found.damage) if (d.reason !== 'not-checked') await repairCopy(run, d, found.good);
      }
      publish();
      await run.step(0);
    });
    publish();
    const repaired = damage.filter((d) => d.repaired).length;
    const remaining = damage.length - repaired;
    return `${blocks.length} blocks, ${replicas} copies checked: ${damage.length} damaged, ${repaired} repaired, ${remaining} remaining`;
  };
}
