// Rebalance planning, as a pure function of a snapshot so the same state always gives the
// same plan (a re-run after an interruption plans only what is left). Balance is by bytes,
// not block counts: each move takes a block copy from the fullest server to the emptiest
// one that may hold it, choosing the block whose size best closes the gap, and only when it
// strictly narrows the spread between the two (so planning always ends). A move never makes
// a block's racks less spread than they were, never puts two copies on one server, and never
// lowers a block's copy count (moves add the new copy before dropping the old).
// Blocks left with more copies than their count (a move cut short by a crash) get a trim
// first: the copy on the fullest server goes.

export interface PlanServer {
  id: string;
  rack: string;
  freeBytes: number;
}

export interface PlanBlock {
  id: number;
  replication: number;
  /** bytes of the block file (the largest copy's) */
  size: number;
  /** every live server holding a counted copy */
  holders: string[];
  /** false when the block may not be moved now (busy, owes deletes, ...) */
  movable: boolean;
  /** writable blocks are moved last: a move seals them */
  writable: boolean;
}

export interface PlannedMove {
  block: number;
  from: string;
  /** absent for a trim (an extra copy dropped) */
  to?: string;
  bytes: number;
}

export interface BalancePlan {
  moves: PlannedMove[];
  mean: number;
  /** used bytes per server (by counted copies) now, and after the plan */
  before: Record<string, number>;
  after: Record<string, number>;
}

export interface PlanOptions {
  /** stop once every server is within this share of the mean (default 0.05) */
  tolerance?: number;
  maxMoves?: number;
  /** racks of holders that are not in `servers` (draining or otherwise ineligible), for the rack rule */
  racks?: Readonly<Record<string, string>>;
}

function rackKey(id: string, rackOf: Map<string, string>): string {
  const r = rackOf.get(id) ?? '';
  return r === '' ? `\0${id}` : r;
}

function distinctRacks(ids: readonly string[], rackOf: Map<string, string>): number {
  return new Set(ids.map((id) => rackKey(id, rackOf))).size;
}

export function planBalance(servers: readonly PlanServer[], blocks: readonly PlanBlock[], opts: PlanOptions = {}): BalancePlan {
  const tolerance = opts.tolerance ?? 0.05;
  const maxMoves = opts.maxMoves ?? 10_000;
  const eligible = new Set(servers.map((s) => s.id));
  const rackOf = new Map<string, string>([...Object.entries(opts.racks ?? {}), ...servers.map((s): [string, string] => [s.id, s.rack])]);
  const load = new Map<string, number>(servers.map((s) => [s.id, 0]));
  const free = new Map<string, number>(servers.map((s) => [s.id, s.freeBytes]));
  const holders = new Map<number, string[]>();
  for (const b of blocks) {
    holders.set(b.id, [...b.holders]);
    for (const h of b.holders) if (load.has(h)) load.set(h, load.get(h)! + b.size);
  }
  const before = Object.fromEntries(load);
  const moves: PlannedMove[] = [];

  for (const b of blocks) {
    const hs = holders.get(b.id)!;
    if (!b.movable || hs.length <= b.replication) continue;
    const extras = hs.filter((h) => eligible.has(h)).sort((x, y) => load.get(y)! - load.get(x)! || (x < y ? -1 : 1));
    for (const drop of extras) {
      if (hs.length <= b.replication) break;
      const rest = hs.filter((h) => h !== drop);
      if (distinctRacks(rest, rackOf) < Math.min(rest.length, distinctRacks(hs, rackOf))) continue;
      moves.push({ block: b.id, from: drop, bytes: b.size });
      hs.splice(hs.indexOf(drop), 1);
      load.set(drop, load.get(drop)! - b.size);
      free.set(drop, free.get(drop)! + b.size);
    }
  }

  const moved = new Set<number>();
  const total = () => [...load.values()].reduce((s, v) => s + v, 0);
  const n = servers.length;
  while (n >= 2 && moves.length < maxMoves) {
    const mean = total() / n;
    const order = [...load.entries()].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
    const [, topLoad] = order[0]!;
    const [, lowLoad] = order[order.length - 1]!;
    if (topLoad - mean <= tolerance * mean && mean - lowLoad <= tolerance * mean) break;
    let best: { b: PlanBlock; from: string; to: string; score: number } | undefined;
    // From the fullest servers down, to the emptiest up: the first pair that has a useful
    // block wins, and within it the block nearest the ideal size.
    outer: for (const [from, fromLoad] of order) {
      if (fromLoad <= mean) break;
      for (const [to, toLoad] of [...order].reverse()) {
        if (toLoad >= mean || to === from) break;
        const spread = fromLoad - toLoad;
        const ideal = Math.min(fromLoad - mean, mean - toLoad);
        for (const b of blocks) {
          if (!b.movable || moved.has(b.id) || b.size <= 0 || b.size >= spread) continue;
          const hs = holders.get(b.id)!;
          if (!hs.includes(from) || hs.includes(to)) continue;
          if (free.get(to)! < b.size) continue;
          const next = hs.map((h) => (h === from ? to : h));
          if (distinctRacks(next, rackOf) < distinctRacks(hs, rackOf)) continue;
          // Sealed blocks first (a move seals a writable one); then closeness to the ideal size.
          const score = Math.abs(b.size - ideal) + (b.writable ? spread : 0);
          if (!best || score < best.score || (score === best.score && b.id < best.b.id)) best = { b, from, to, score };
        }
        if (best) break outer;
      }
    }
    if (!best) break;
    const { b, from, to } = best;
    const hs = holders.get(b.id)!;
    hs[hs.indexOf(from)] = to;
    moved.add(b.id);
    load.set(from, load.get(from)! - b.size);
    load.set(to, load.get(to)! + b.size);
    free.set(to, free.get(to)! - b.size);
    free.set(from, free.get(from)! + b.size);
    moves.push({ block: b.id, from, to, bytes: b.size });
  }
  return { moves, mean: n > 0 ? total() / n : 0, before, after: Object.fromEntries(load) };
}
