// Placement and the persisted sequences, in process (pure logic and a real LevelDB).
import { describe, expect, it } from 'vitest';
import { chooseCopyTarget, chooseReplicaSet, chooseReplicaSetWith, racksDistinctEnough, uncoveredServer } from '../../nameserver/placement.ts';
import { CopyReports, type DataserverEntry } from '../../nameserver/registry.ts';
import { CopyTable } from '../../nameserver/copy-table.ts';
import { PersistedSequence } from '../../nameserver/sequence.ts';
import { jsonSublevel, openStateDb } from '../../nameserver/state-db.ts';
import { tempDir } from '../helpers/proc.ts';

function ds(id: string, rack: string, freeBytes = 10 ** 9, draining = false): DataserverEntry {
  return { id, url: `http://${id}`, rack, draining, freeBytes, usedBytes: 0, blockSize: 1024, lastSeen: 1, reports: new CopyReports(new CopyTable(), 0) };
}

describe('placement', () => {
  it('puts replicas on distinct servers and distinct racks', () => {
    const servers = [ds('a1', 'a'), ds('a2', 'a'), ds('b1', 'b'), ds('b2', 'b'), ds('c1', 'c')];
    for (let i = 0; i < 200; i++) {
      const set = chooseReplicaSet(servers, 3)!;
      expect(new Set(set.map((d) => d.id)).size).toBe(3);
      expect(new Set(set.map((d) => d.rack)).size).toBe(3);
      const two = chooseReplicaSet(servers, 2)!;
      expect(two[0]!.rack).not.toBe(two[1]!.rack);
    }
  });

  it('uses racks as evenly as it can when there are fewer racks than replicas', () => {
    const servers = [ds('a1', 'a'), ds('a2', 'a'), ds('a3', 'a'), ds('b1', 'b')];
    const set = chooseReplicaSet(servers, 3)!;
    expect(set.map((d) => d.id)).toContain('b1');
    expect(racksDistinctEnough(set, servers)).toBe(true);
  });

  it('refuses when there are not enough eligible servers (draining or full ones do not count)', () => {
    const servers = [ds('a', 'a'), ds('b', 'b', 10, false), ds('c', 'c', 10 ** 9, true)];
    expect(chooseReplicaSet(servers, 2, { needBytes: 1000 })).toBeUndefined();
    expect(chooseReplicaSet(servers, 1, { needBytes: 1000 })!.map((d) => d.id)).toEqual(['a']);
  });

  it('prefers free space and spreads open blocks', () => {
    const servers = [ds('small', 'a', 10 ** 6), ds('big', 'b', 10 ** 10), ds('mid', 'c', 10 ** 8)];
    expect(chooseReplicaSet(servers, 1, { jitter: 0 })![0]!.id).toBe('big');
    const load = new Map([['big', 1000]]);
    expect(chooseReplicaSet(servers, 1, { jitter: 0, load })![0]!.id).toBe('mid');
  });

  it('picks a copy target off the holders and their racks', () => {
    const servers = [ds('a1', 'a'), ds('a2', 'a'), ds('b1', 'b'), ds('c1', 'c', 10)];
    const holders = [servers[0]!, servers[2]!];
    expect(chooseCopyTarget(servers, [holders[0]!], { needBytes: 100 })!.rack).toBe('b');
    expect(chooseCopyTarget(servers, holders, { needBytes: 100 })!.id).toBe('a2');
    expect(chooseCopyTarget([servers[0]!], [servers[0]!])).toBeUndefined();
  });
});

describe('write coverage', () => {
  it('finds a live server with room that is in no open block, skipping full, draining and recently failed ones', () => {
    const servers = [ds('a', 'a'), ds('b', 'b'), ds('c', 'c'), ds('full', 'd', 10), ds('leaving', 'e', 10 ** 9, true)];
    const open = [{ replicas: ['a', 'b'] }, { replicas: ['b', 'a'] }];
    expect(uncoveredServer(servers, open, 1000)?.id).toBe('c');
    expect(uncoveredServer(servers, [...open, { replicas: ['c', 'a'] }], 1000)).toBeUndefined();
    expect(uncoveredServer(servers, open, 1000, (id) => id === 'c')).toBeUndefined();
    expect(uncoveredServer(servers, open, 5)?.id).toBe('c');
    expect(uncoveredServer(servers.slice(3), [], 5)?.id).toBe('full');
  });

  it('builds a replica set around a given server, on other racks where it can', () => {
    const servers = [ds('a1', 'a'), ds('a2', 'a'), ds('b1', 'b'), ds('c1', 'c', 10)];
    for (let i = 0; i < 50; i++) {
      const set = chooseReplicaSetWith(servers, 2, servers[1]!, { needBytes: 100 })!;
      expect(set.map((d) => d.id)).toEqual(['a2', 'b1']);
    }
    expect(chooseReplicaSetWith(servers, 3, servers[0]!, { needBytes: 100 })!.map((d) => d.id).sort()).toEqual(['a1', 'a2', 'b1']);
    expect(chooseReplicaSetWith(servers, 1, servers[2]!)!.map((d) => d.id)).toEqual(['b1']);
    // not enough others with room, or the given one itself has none
    expect(chooseReplicaSetWith(servers, 4, servers[0]!, { needBytes: 100 })).toBeUndefined();
    expect(chooseReplicaSetWith(servers, 2, servers[3]!, { needBytes: 100 })).toBeUndefined();
  });
});

describe('persisted sequence', () => {
  it('never hands out a number twice across reopen, and skips at most one lease', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const seen = new Set<bigint>();
      let max = 0n;
      for (let round = 0; round < 4; round++) {
        const db = await openStateDb(dir);
        const seq = new PersistedSequence(jsonSublevel<string>(db, 'meta'), 'nextKey', 10n, 1000n);
        await seq.open();
        const taken = await Promise.all(Array.from({ length: 13 + round }, () => seq.take()));
        for (const n of taken) {
          expect(seen.has(n)).toBe(false);
          seen.add(n);
          expect(n).toBeLessThan(seq.leasedUpTo);
          if (round > 0) expect(n).toBeGreaterThan(max);
        }
        const newMax = taken.reduce((a, b) => (b > a ? b : a), 0n);
        if (round > 0) expect(taken[0]! - max).toBeLessThanOrEqual(10n);
        max = newMax;
        await db.close();
      }
    } finally {
      cleanup();
    }
  });

  it('skips past numbers found to exist, durably, even with takes in flight', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let db = await openStateDb(dir);
      let seq = new PersistedSequence(jsonSublevel<string>(db, 'meta'), 'nextBlockId', 16n, 0xffffffffn);
      await seq.open();
      const taken = await Promise.all([seq.take(), seq.skipThrough(500n), seq.take(), seq.skipThrough(20n), seq.take()]);
      const nums = taken.filter((x): x is bigint => typeof x === 'bigint');
      expect(new Set(nums).size).toBe(3);
      expect(nums).not.toContain(500n);
      expect(nums).not.toContain(20n);
      // once a skip has returned, every later number is past it
      expect(await seq.take()).toBeGreaterThan(500n);
      await seq.skipThrough(1000n);
      expect(await seq.take()).toBe(1001n);
      await db.close();
      db = await openStateDb(dir);
      seq = new PersistedSequence(jsonSublevel<string>(db, 'meta'), 'nextBlockId', 16n, 0xffffffffn);
      await seq.open();
      expect(await seq.take()).toBeGreaterThan(1001n);
      await db.close();
    } finally {
      cleanup();
    }
  });

  it('throws when the space is exhausted instead of wrapping', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = await openStateDb(dir);
      const seq = new PersistedSequence(jsonSublevel<string>(db, 'meta'), 'nextBlockId', 4n, 5n);
      await seq.open();
      const got = [];
      for (let i = 0; i < 5; i++) got.push(await seq.take());
      expect(got).toEqual([1n, 2n, 3n, 4n, 5n]);
      await expect(seq.take()).rejects.toThrow(/exhausted/);
      await db.close();
    } finally {
      cleanup();
    }
  });
});
