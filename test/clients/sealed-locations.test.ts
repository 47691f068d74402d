// Sealed blocks' locations on a real cluster (a name server and four data servers, each its
// own process): a client following the delete feed reads files of sealed blocks again and
// again without asking the name server once more, while a writable block's location is asked
// for again once its short TTL is over; a drain moves copies off a server, the name server
// records each replica-set change in the feed's `moves`, and the client drops exactly the
// moved blocks' locations and learns the new ones, without a read having to fail first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { BlockLocation, DeleteFeedPage } from '../../src/wire/protocol.ts';
import { nsGet, startCluster, writeRandomFiles, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

/** Shorter than any pause below: a location kept past it was kept by the sealed rule. */
const SHORT_TTL_MS = 200;

let c: Cluster;
let reader: ClusterClient;
let stopWatch = () => {};
const files = new Map<string, Buffer>();
const heardDeletes: string[] = [];

beforeAll(async () => {
  c = await startCluster({ dataservers: 4, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 32 * 1024 });
  await writeRandomFiles(c, files, { count: 90, batch: 6, spread: 613 });
  reader = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret, timeoutMs: 5000, locationTtlMs: SHORT_TTL_MS });
  stopWatch = reader.watchDeletes({ onDelete: (fids) => void heardDeletes.push(...fids), intervalMs: 100 });
  // The watcher has its cursor once it hears a delete made after it started.
  const marker = await c.client.write(Buffer.from('marker'));
  await c.client.delete(marker.fid);
  await waitFor('the watcher follows the feed', () => heardDeletes.includes(marker.fid), 20_000);
});
afterAll(async () => {
  stopWatch();
  await reader?.close();
  await c?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const blockOf = (fid: string) => decodeFid(fid).block;

async function readAll(fids: string[]): Promise<void> {
  for (const fid of fids) expect((await reader.read(fid)).data.equals(files.get(fid)!), fid).toBe(true);
}

async function states(): Promise<Map<number, BlockLocation>> {
  const out = new Map<number, BlockLocation>();
  for (const b of new Set([...files.keys()].map(blockOf))) out.set(b, await nsGet<BlockLocation>(c, `/blocks/${b}`));
  return out;
}

describe('sealed block locations', () => {
  it('are asked for once however often they are read; a writable one again after its TTL', async () => {
    const locs = await states();
    const sealedBlocks = [...locs.values()].filter((l) => l.state === 'sealed' && !l.writable).map((l) => l.block);
    expect(sealedBlocks.length).toBeGreaterThanOrEqual(3);
    const sealedFids = [...files.keys()].filter((f) => sealedBlocks.includes(blockOf(f)));

    const before = reader.locationStats().lookups;
    await readAll(sealedFids);
    expect(reader.locationStats().lookups - before).toBe(sealedBlocks.length);
    for (let pass = 0; pass < 3; pass++) {
      await sleep(2 * SHORT_TTL_MS);
      await readAll(sealedFids);
    }
    expect(reader.locationStats().lookups - before).toBe(sealedBlocks.length);
    expect(reader.locationStats().hits).toBeGreaterThanOrEqual(4 * sealedFids.length - sealedBlocks.length);

    // A writable block (the one the next writes go to) is asked for again after the short TTL.
    const w = await c.client.write(Buffer.from('in a writable block'));
    files.set(w.fid, Buffer.from('in a writable block'));
    const wloc = await nsGet<BlockLocation>(c, `/blocks/${blockOf(w.fid)}`);
    expect(wloc.writable).toBe(true);
    const mark = reader.locationStats().lookups;
    await readAll([w.fid]);
    await sleep(2 * SHORT_TTL_MS);
    await readAll([w.fid]);
    expect(reader.locationStats().lookups - mark).toBe(2);
  });

  it('a drain moves copies: the feed names each moved block and the client drops just those', async () => {
    const locs = await states();
    const cachedSealed = [...locs.values()].filter((l) => l.state === 'sealed' && !l.writable);
    // the server holding the most of our sealed blocks
    const count = new Map<string, number>();
    for (const l of cachedSealed) for (const r of l.replicas) count.set(r.id, (count.get(r.id) ?? 0) + 1);
    const victim = [...count.entries()].sort((a, b) => b[1] - a[1])[0]![0];
    const onVictim = cachedSealed.filter((l) => l.replicas.some((r) => r.id === victim)).map((l) => l.block);
    expect(onVictim.length).toBeGreaterThan(0);
    const head = await reader.deletesSince();
    const drainMark = reader.locationStats().lookups;

    const r = await c.cli(['drain', victim]);
    expect(r.code, r.stderr).toBe(0);

    // Every block that left the victim is in the feed's moves, with a version above what we cached.
    const moved = new Map<number, number>();
    for (let after = head.seq; ; ) {
      const page = await nsGet<DeleteFeedPage>(c, `/deletes?after=${after}`);
      for (const m of page.moves ?? []) moved.set(m.block, Math.max(moved.get(m.block) ?? 0, m.version));
      if (page.seq === after) break;
      after = page.seq;
    }
    for (const b of onVictim) {
      expect(moved.has(b), `block ${b} moved off ${victim}`).toBe(true);
      expect(moved.get(b)!).toBeGreaterThan(locs.get(b)!.version ?? 0);
    }

    // The client learns it from the feed, not from a failed read: locate() reads the cache.
    for (const b of onVictim) {
      await waitFor(`block ${b}'s new location`, async () => (await reader.locate(b)).replicas.every((x) => x.id !== victim), 10_000);
    }
    // One lookup per moved block we had cached (two when the client polled between a move's
    // copy and its drop, each a new version); the rest stayed cached.
    const movedCached = cachedSealed.filter((l) => moved.has(l.block)).length;
    const spent = reader.locationStats().lookups - drainMark;
    expect(spent).toBeGreaterThanOrEqual(onVictim.length);
    expect(spent).toBeLessThanOrEqual(2 * movedCached);
    const mark = reader.locationStats().lookups;
    const sealedFids = [...files.keys()].filter((f) => cachedSealed.some((l) => l.block === blockOf(f)));
    await readAll(sealedFids);
    await readAll(sealedFids);
    const untouched = cachedSealed.filter((l) => !moved.has(l.block));
    expect(untouched.length).toBeGreaterThan(0);
    expect(reader.locationStats().lookups - mark).toBe(0);
    for (const l of untouched) expect((await reader.locate(l.block)).replicas).toEqual(l.replicas);
  });
});
