// The rebalance planner on made-up snapshots: it evens out bytes (not block counts), keeps
// copies on distinct servers and racks, trims extra copies, and plans nothing on a balanced
// cluster. Pure function: no processes.
import { describe, expect, it } from 'vitest';
import { planBalance, type PlanBlock, type PlanServer } from '../../nameserver/ops-balance-plan.ts';

const GB = 1 << 30;

function servers(spec: Array<[string, string]>): PlanServer[] {
  return spec.map(([id, rack]) => ({ id, rack, freeBytes: 100 * GB }));
}

function block(id: number, size: number, holders: string[], extra: Partial<PlanBlock> = {}): PlanBlock {
  return { id, replication: 2, size, holders, movable: true, writable: false, ...extra };
}

function applyPlan(blocks: PlanBlock[], moves: ReturnType<typeof planBalance>['moves']): Map<number, string[]> {
  const out = new Map(blocks.map((b) => [b.id, [...b.holders]]));
  for (const m of moves) {
    const hs = out.get(m.block)!;
    if (m.to) hs[hs.indexOf(m.from)] = m.to;
    else hs.splice(hs.indexOf(m.from), 1);
  }
  return out;
}

describe('planBalance', () => {
  it('fills an empty server to near the mean by bytes, racks kept distinct', () => {
    const ss = servers([['ds-1', 'a'], ['ds-2', 'b'], ['ds-3', 'c'], ['ds-4', 'a']]);
    const pairs = [['ds-1', 'ds-2'], ['ds-2', 'ds-3'], ['ds-1', 'ds-3']];
    // Sizes vary a lot: counting blocks would balance badly.
    const blocks = Array.from({ length: 30 }, (_, i) => block(i + 1, (i % 5 === 0 ? 40 : 4) * 1024 * 1024, pairs[i % 3]!));
    const plan = planBalance(ss, blocks);
    expect(plan.moves.length).toBeGreaterThan(0);
    expect(plan.before['ds-4']).toBe(0);
    for (const id of Object.keys(plan.after)) expect(Math.abs(plan.after[id]! - plan.mean) / plan.mean).toBeLessThan(0.2);
    const rack = new Map(ss.map((s) => [s.id, s.rack]));
    for (const [, hs] of applyPlan(blocks, plan.moves)) {
      expect(hs).toHaveLength(2);
      expect(new Set(hs.map((h) => rack.get(h))).size).toBe(2);
    }
    // deterministic: the same snapshot gives the same plan
    expect(planBalance(ss, blocks)).toEqual(plan);
  });

  it('plans nothing on a balanced cluster and never moves unmovable or busy blocks', () => {
    const ss = servers([['ds-1', 'a'], ['ds-2', 'b']]);
    const balanced = [block(1, 1000, ['ds-1', 'ds-2']), block(2, 1000, ['ds-1', 'ds-2'])];
    expect(planBalance(ss, balanced).moves).toEqual([]);
    const ss3 = servers([['ds-1', 'a'], ['ds-2', 'b'], ['ds-3', 'c']]);
    const stuck = [block(1, 1000, ['ds-1', 'ds-2'], { movable: false })];
    expect(planBalance(ss3, stuck).moves).toEqual([]);
  });

  it('trims a copy beyond the replica count from the fullest server first', () => {
    const ss = servers([['ds-1', 'a'], ['ds-2', 'b'], ['ds-3', 'c']]);
    const blocks = [block(1, 5000, ['ds-1', 'ds-2', 'ds-3']), block(2, 9000, ['ds-1', 'ds-2'])];
    const plan = planBalance(ss, blocks);
    expect(plan.moves[0]).toEqual({ block: 1, from: 'ds-1', bytes: 5000 });
    const after = applyPlan(blocks, plan.moves);
    expect(after.get(1)).toHaveLength(2);
    expect(after.get(2)).toHaveLength(2);
  });

  it('does not put two copies on one rack when racks allow otherwise', () => {
    // Only ds-3 is emptier, but it shares rack 'a' with ds-1: moving ds-2's copy there would
    // put both copies of every block on rack a.
    const ss = servers([['ds-1', 'a'], ['ds-2', 'b'], ['ds-3', 'a']]);
    const blocks = Array.from({ length: 6 }, (_, i) => block(i + 1, 1000, ['ds-1', 'ds-2']));
    const plan = planBalance(ss, blocks);
    for (const m of plan.moves) expect(m.from).toBe('ds-1');
    const rack = new Map(ss.map((s) => [s.id, s.rack]));
    for (const [, hs] of applyPlan(blocks, plan.moves)) expect(new Set(hs.map((h) => rack.get(h))).size).toBe(2);
  });
});
