// The made-up cluster of the name-server scale bench (bench/ns-scale.ts): which simulated data
// server holds which block, and what each block's report says before anything changes. Both
// the seeder (block records written into the name server's state) and the simulator
// (bench/lib/dataserver-sim.ts, the reports sent) derive it from (blocks, servers) alone, so
// the two agree without exchanging millions of ids.
import type { BlockReport } from '../../src/wire/protocol.ts';

/** blocks of the seeded layout: 1..blocks, each on 2 servers */
export interface Layout {
  blocks: number;
  servers: number;
}

export const REPLICAS = 2;
/** the block size the simulated servers announce (a real cluster's 256 MiB blocks) */
export const SIM_BLOCK_SIZE = 256 * 2 ** 20;
/** free space each simulated server announces: plenty, so placement never runs out */
export const SIM_FREE_BYTES = 8 * 2 ** 40;
/** racks the servers are spread over (placement puts a block's copies on two racks) */
export const SIM_RACKS = 20;

/** The id of simulated server `i` (0-based): sim-0001, sim-0002... */
export function simId(i: number): string {
  return `sim-${String(i + 1).padStart(4, '0')}`;
}

/** The server index of a simulated id, or -1. */
export function simIndex(id: string): number {
  const m = /^sim-(\d+)$/.exec(id);
  return m ? Number(m[1]) - 1 : -1;
}

export function simRack(i: number): string {
  return `rack-${i % SIM_RACKS}`;
}

/**
 * The two servers of block `b` (1-based): the first by round robin, the second a stride away
 * that changes every round, so a dead server's blocks have their survivors spread over every
 * other server (as placement spreads them), and the two are never the same server.
 */
export function holdersOf(b: number, servers: number): [number, number] {
  const p = b % servers;
  const step = 1 + (Math.floor(b / servers) % (servers - 1));
  return [p, (p + step) % servers];
}

/** Whether server `i` holds block `b` in the layout. */
export function inLayout(b: number, i: number, l: Layout): boolean {
  if (b < 1 || b > l.blocks) return false;
  const [p, q] = holdersOf(b, l.servers);
  return p === i || q === i;
}

/** Every server's blocks, ascending: one pass to count, one to fill. */
export function serverBlocks(l: Layout): Uint32Array[] {
  if (l.servers < 2) throw new RangeError('the layout needs at least 2 servers');
  const counts = new Uint32Array(l.servers);
  for (let b = 1; b <= l.blocks; b++) {
    const [p, q] = holdersOf(b, l.servers);
    counts[p]!++;
    counts[q]!++;
  }
  const out = Array.from(counts, (n) => new Uint32Array(n));
  const fill = new Uint32Array(l.servers);
  for (let b = 1; b <= l.blocks; b++) {
    const [p, q] = holdersOf(b, l.servers);
    out[p]![fill[p]!++] = b;
    out[q]![fill[q]!++] = b;
  }
  return out;
}

/**
 * A sealed block as a data server reports it: nearly full (block sizes vary a little),
 * a thousand-odd files of ~200 KB, some of them deleted. Deterministic in the id.
 */
export function baseReport(b: number): BlockReport {
  const deletedBytes = (b % 13) * 200_000;
  const liveCount = 1200 + (b % 97);
  const liveBytes = liveCount * 200_000;
  return { id: b, size: liveBytes + deletedBytes + 64 * (b % 13) + ((b * 7919) % 4096), liveCount, liveBytes, deletedBytes, sealed: true, readonly: false, gen: 0 };
}

/** An empty block just created for writes. */
export function newBlockReport(b: number): BlockReport {
  return { id: b, size: 0, liveCount: 0, liveBytes: 0, deletedBytes: 0, sealed: false, readonly: false, gen: 0 };
}

/**
 * The report after one beat's worth of client work on the block: a writable block takes a
 * ~200 KB file; a sealed one loses a file (a 64-byte tombstone appended, its bytes counted
 * as deleted).
 */
export function churned(r: BlockReport, fileBytes = 200_000): BlockReport {
  if (!r.sealed) return { ...r, size: r.size + fileBytes + 64, liveCount: r.liveCount + 1, liveBytes: r.liveBytes + fileBytes };
  const bytes = Math.min(fileBytes, r.liveBytes);
  return { ...r, size: r.size + 64, liveCount: Math.max(0, r.liveCount - 1), liveBytes: r.liveBytes - bytes, deletedBytes: r.deletedBytes + bytes };
}
