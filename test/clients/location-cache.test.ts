// The location cache's trust rules, against an in-process name-server answer table (the
// cluster test beside this one, sealed-locations.test.ts, runs them against real processes):
// a sealed block's location is kept for the long TTL and any other for the short one; a move
// from the feed drops a location older than its version; an answer older than a move already
// heard is not kept; a failed replica or a feed gap drops sealed locations; distrusted sealed
// locations still serve reads while no name server answers; concurrent lookups of one block
// are one request.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { UgcfsError } from '../../src/base/errors.ts';
import { LocationCache } from '../../src/clients/location-cache.ts';
import type { BlockLocation } from '../../src/wire/protocol.ts';

const TTL = 10_000;
const SEALED_TTL = 3_600_000;

/** What the name server would answer, per block; `down` makes every lookup fail as an unreachable group does. */
function table() {
  const answers = new Map<number, BlockLocation>();
  const t = {
    answers,
    asked: [] as number[],
    down: false,
    /** resolves pending lookups when called (held: answers wait for release()) */
    held: false,
    waiting: [] as Array<() => void>,
    async locate(block: number): Promise<BlockLocation> {
      t.asked.push(block);
      if (t.held) await new Promise<void>((r) => t.waiting.push(r));
      if (t.down) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'no name server answered');
      const loc = answers.get(block);
      if (!loc) throw new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${block}`);
      return structuredClone(loc);
    },
    release() {
      t.held = false;
      for (const r of t.waiting.splice(0)) r();
    },
  };
  return t;
}

const sealed = (block: number, version: number | undefined, ...ids: string[]): BlockLocation => ({
  block,
  replicas: ids.map((id) => ({ id, url: `http://${id}`, rack: '' })),
  writable: false,
  state: 'sealed',
  ...(version === undefined ? {} : { version }),
});
const writable = (block: number, ...ids: string[]): BlockLocation => ({ ...sealed(block, 1, ...ids), writable: true, state: 'writable' });

let ns: ReturnType<typeof table>;
let cache: LocationCache;
const ids = async (block: number, refresh = false, staleSealed = false) => (await cache.locate(block, refresh, staleSealed)).replicas.map((r) => r.id);

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'], now: 1_000_000 });
  ns = table();
  cache = new LocationCache(ns, { ttlMs: TTL, sealedTtlMs: SEALED_TTL, size: 100 });
});
afterEach(() => {
  vi.useRealTimers();
});

describe('location cache', () => {
  it('keeps a sealed block for the sealed TTL, any other block for the short one', async () => {
    ns.answers.set(1, sealed(1, 1, 'a', 'b'));
    ns.answers.set(2, writable(2, 'a', 'c'));
    ns.answers.set(3, { ...sealed(3, 1, 'b', 'c'), state: 'readonly' });
    for (let i = 0; i < 5; i++) for (const b of [1, 2, 3]) await cache.locate(b);
    expect(ns.asked).toEqual([1, 2, 3]);
    expect(cache.stats()).toMatchObject({ lookups: 3, hits: 12, cached: 3 });

    vi.advanceTimersByTime(TTL + 1);
    for (const b of [1, 2, 3]) await cache.locate(b);
    expect(ns.asked).toEqual([1, 2, 3, 2, 3]);

    vi.advanceTimersByTime(SEALED_TTL - TTL - 100);
    await cache.locate(1);
    expect(ns.asked).toHaveLength(5);
    vi.advanceTimersByTime(200);
    await cache.locate(1);
    expect(ns.asked).toEqual([1, 2, 3, 2, 3, 1]);
  });

  it('a move drops a location older than its version (or without one), not a newer one', async () => {
    ns.answers.set(1, sealed(1, 3, 'a', 'b'));
    ns.answers.set(2, sealed(2, undefined, 'a', 'b'));
    await cache.locate(1);
    await cache.locate(2);
    cache.moved(1, 3); // the move this answer already shows
    cache.moved(1, 2);
    await cache.locate(1);
    expect(ns.asked).toEqual([1, 2]);

    ns.answers.set(1, sealed(1, 4, 'a', 'c'));
    cache.moved(1, 4);
    expect(await ids(1)).toEqual(['a', 'c']);
    cache.moved(2, 1); // an answer without a version cannot be newer than any move
    await cache.locate(2);
    expect(ns.asked).toEqual([1, 2, 1, 2]);
    cache.moved(9, 1); // a block not cached: nothing to drop
    expect(cache.stats()).toMatchObject({ lookups: 4, dropped: 2 });
  });

  it('an answer sent before a move the feed already named serves once and is not kept', async () => {
    ns.answers.set(1, sealed(1, 5, 'a', 'b'));
    ns.held = true;
    const pending = cache.locate(1);
    await vi.waitFor(() => expect(ns.waiting).toHaveLength(1));
    cache.moved(1, 6); // heard from the feed while the (older) answer was on its way
    ns.release();
    expect((await pending).version).toBe(5);
    ns.answers.set(1, sealed(1, 6, 'a', 'c'));
    expect(await ids(1)).toEqual(['a', 'c']);
    await cache.locate(1);
    expect(ns.asked).toEqual([1, 1]);
  });

  it('a failed replica or a feed gap drops sealed locations; a gap keeps the short-lived ones', async () => {
    ns.answers.set(1, sealed(1, 1, 'a', 'b'));
    ns.answers.set(2, sealed(2, 1, 'b', 'c'));
    ns.answers.set(3, writable(3, 'a', 'c'));
    for (const b of [1, 2, 3]) await cache.locate(b);
    cache.replicaFailed(1);
    for (const b of [1, 2, 3]) await cache.locate(b);
    expect(ns.asked).toEqual([1, 2, 3, 1]);
    cache.sealedUnknown();
    for (const b of [1, 2, 3]) await cache.locate(b);
    expect(ns.asked).toEqual([1, 2, 3, 1, 1, 2]);
  });

  it('serves a distrusted sealed location to reads while no name server answers, never a writable one', async () => {
    ns.answers.set(1, sealed(1, 1, 'a', 'b'));
    ns.answers.set(2, writable(2, 'a', 'c'));
    await cache.locate(1);
    await cache.locate(2);
    cache.moved(1, 2);
    vi.advanceTimersByTime(TTL + 1);
    ns.down = true;
    expect(await ids(1, false, true)).toEqual(['a', 'b']);
    await expect(cache.locate(1)).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' }); // locate() and stat want the current one
    await expect(cache.locate(2, false, true)).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' });
    ns.down = false;
    ns.answers.set(1, sealed(1, 2, 'a', 'c'));
    vi.advanceTimersByTime(2001); // past the pause after a failed lookup
    expect(await ids(1, false, true)).toEqual(['a', 'c']);
  });

  it('evicts the least recently used block when full', async () => {
    cache = new LocationCache(ns, { ttlMs: TTL, sealedTtlMs: SEALED_TTL, size: 3 });
    for (const b of [1, 2, 3, 4]) ns.answers.set(b, sealed(b, 1, 'a', 'b'));
    for (const b of [1, 2, 3, 1, 4]) await cache.locate(b); // 1 was used after 2: 2 goes
    expect(ns.asked).toEqual([1, 2, 3, 4]);
    for (const b of [1, 3, 4]) await cache.locate(b);
    expect(ns.asked).toEqual([1, 2, 3, 4]);
    await cache.locate(2);
    expect(ns.asked).toEqual([1, 2, 3, 4, 2]);
    expect(cache.stats().cached).toBe(3);
  });

  it('concurrent lookups of one block are one request; a refresh is its own', async () => {
    ns.answers.set(1, sealed(1, 1, 'a', 'b'));
    ns.held = true;
    const reads = Array.from({ length: 20 }, () => cache.locate(1));
    await vi.waitFor(() => expect(ns.waiting).toHaveLength(1));
    const refresh = cache.locate(1, true);
    await vi.waitFor(() => expect(ns.waiting).toHaveLength(2));
    ns.release();
    await Promise.all([...reads, refresh]);
    expect(ns.asked).toEqual([1, 1]);
    expect(cache.stats().lookups).toBe(2);
  });
});
