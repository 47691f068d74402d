// Where copies go. Replicas of one block sit on distinct data servers and, when racks are
// given, on distinct racks as far as the racks allow. Among eligible servers the ones with
// the most free space and the fewest open writable blocks come first, with a little
// randomness so parallel allocations do not all land on the same server.
import type { DataserverEntry } from './registry.ts';

export interface PlacementOptions {
  /** bytes a new copy needs on the target */
  needBytes?: number;
  /** open writable blocks per data server id (spreads write load) */
  load?: ReadonlyMap<string, number>;
  /** 0 = strict order, 1 = heavy shuffling; default 0.1 */
  jitter?: number;
  random?: () => number;
}

function score(d: DataserverEntry, o: PlacementOptions): number {
  const rnd = o.random ?? Math.random;
  const jitter = o.jitter ?? 0.1;
  const load = o.load?.get(d.id) ?? 0;
  return (Math.max(d.freeBytes, 1) * (1 - jitter * rnd())) / (1 + load);
}

function ranked(candidates: readonly DataserverEntry[], o: PlacementOptions): DataserverEntry[] {
  const need = o.needBytes ?? 0;
  return candidates
    .filter((d) => !d.draining && d.freeBytes >= need)
    .map((d) => ({ d, s: score(d, o) }))
    .sort((a, b) => b.s - a.s)
    .map((x) => x.d);
}

/**
 * Picks `n` servers for a new block, or undefined when there are not enough. Distinct
 * racks are required whenever the eligible servers span at least `n` racks; with fewer
 * racks, the racks are used as evenly as possible.
 */
export function chooseReplicaSet(candidates: readonly DataserverEntry[], n: number, o: PlacementOptions = {}): DataserverEntry[] | undefined {
  const pool = ranked(candidates, o);
  if (pool.length < n) return undefined;
  return pickSpread(pool, n, []);
}

/**
 * Picks `n` servers for a new block with `first` among them (placed first), the others as
 * chooseReplicaSet would pick them around it; undefined when there are not enough.
 */
export function chooseReplicaSetWith(candidates: readonly DataserverEntry[], n: number, first: DataserverEntry, o: PlacementOptions = {}): DataserverEntry[] | undefined {
  if (first.draining || first.freeBytes < (o.needBytes ?? 0)) return undefined;
  if (n === 1) return [first];
  const rest = pickSpread(ranked(candidates.filter((d) => d.id !== first.id), o), n - 1, [first]);
  return rest.length === n - 1 ? [first, ...rest] : undefined;
}

/**
 * A live server that could hold a new block but is in none of the open ones, if any: the
 * pool is refilled by count, so a server that was full or away while it refilled would
 * otherwise take no writes until some open block fills up. `skip` names servers recently
 * tried without success, so one that refuses blocks is not asked on every assign.
 */
export function uncoveredServer(alive: readonly DataserverEntry[], open: readonly { replicas: readonly string[] }[], needBytes: number, skip: (id: string) => boolean = () => false): DataserverEntry | undefined {
  const covered = new Set(open.flatMap((b) => b.replicas));
  return alive.find((d) => !covered.has(d.id) && !d.draining && d.freeBytes >= needBytes && !skip(d.id));
}

/**
 * Picks one server to receive a copy of a block already held by `holders`: not one of
 * them, on a rack they do not use when one is available.
 */
export function chooseCopyTarget(candidates: readonly DataserverEntry[], holders: readonly DataserverEntry[], o: PlacementOptions = {}): DataserverEntry | undefined {
  const held = new Set(holders.map((h) => h.id));
  const pool = ranked(candidates.filter((d) => !held.has(d.id)), o);
  return pickSpread(pool, 1, holders)[0];
}

/** Greedy: each pick prefers the least-used rack so far (unracked servers count as their own rack). */
function pickSpread(pool: DataserverEntry[], n: number, already: readonly DataserverEntry[]): DataserverEntry[] {
  const rackOf = (d: DataserverEntry) => (d.rack === '' ? `\0${d.id}` : d.rack);
  const used = new Map<string, number>();
  for (const d of already) used.set(rackOf(d), (used.get(rackOf(d)) ?? 0) + 1);
  const out: DataserverEntry[] = [];
  const left = [...pool];
  while (out.length < n && left.length > 0) {
    let best = 0;
    for (let i = 1; i < left.length; i++) {
      if ((used.get(rackOf(left[i]!)) ?? 0) < (used.get(rackOf(left[best]!)) ?? 0)) best = i;
    }
    const d = left.splice(best, 1)[0]!;
    out.push(d);
    used.set(rackOf(d), (used.get(rackOf(d)) ?? 0) + 1);
  }
  return out.length === n ? out : [];
}

/** True when the set uses as many distinct racks as the candidates allow. */
export function racksDistinctEnough(set: readonly DataserverEntry[], candidates: readonly DataserverEntry[]): boolean {
  const racks = new Set(candidates.map((d) => d.rack || `\0${d.id}`));
  const setRacks = new Set(set.map((d) => d.rack || `\0${d.id}`));
  return setRacks.size === Math.min(set.length, racks.size);
}
