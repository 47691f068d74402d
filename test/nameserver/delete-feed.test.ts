// The delete feed on a real LevelDB: ordered pages, cursors across reopen, and an honest
// "incomplete" once the feed has been trimmed past a cursor.
import { describe, expect, it } from 'vitest';
import { DeleteFeed } from '../../nameserver/delete-feed.ts';
import { encodeFid } from '../../src/wire/file-id.ts';
import { jsonSublevel, openStateDb } from '../../nameserver/state-db.ts';
import { tempDir } from '../helpers/proc.ts';

describe('delete feed', () => {
  it('pages in order, survives reopen, and reports gaps after trimming', async () => {
    const { dir, cleanup } = tempDir();
    try {
      let db = await openStateDb(dir);
      let feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), { maxEntries: 5, pageSize: 2 });
      await feed.load();
      await feed.takeOver();
      const id = feed.feedId;
      expect(id).toMatch(/^[0-9a-f]{16}$/);
      expect(feed.since(undefined)).toEqual({ feed: id, seq: 0, deletes: [], moves: [], complete: true });
      for (const f of ['a', 'b', 'c']) await feed.record(f, 1000);
      const p1 = feed.since(0);
      expect(p1.deletes.map((d) => d.fid)).toEqual(['a', 'b']);
      expect(p1.complete).toBe(true);
      const p2 = feed.since(p1.seq);
      expect(p2.deletes.map((d) => d.fid)).toEqual(['c']);
      expect(feed.since(p2.seq)).toEqual({ feed: id, seq: 3, deletes: [], moves: [], complete: true });
      await db.close();

      db = await openStateDb(dir);
      feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), { maxEntries: 5, pageSize: 10 });
      await feed.load();
      await feed.takeOver();
      expect(feed.feedId).toBe(id); // the same feed across a reopen
      expect(feed.since(1).deletes.map((d) => d.fid)).toEqual(['b', 'c']);
      for (const f of ['d', 'e', 'f', 'g']) await feed.record(f, 2000);
      // only the last 5 (c..g) are kept: a cursor at 1 missed b
      const gap = feed.since(1);
      expect(gap.complete).toBe(false);
      expect(gap.deletes.map((d) => d.fid)).toEqual(['c', 'd', 'e', 'f', 'g']);
      expect(feed.since(2).complete).toBe(true);
      // a cursor from the future (a reset feed) is a gap too
      expect(feed.since(99).complete).toBe(false);
      await db.close();

      db = await openStateDb(dir);
      feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), { maxEntries: 5, maxAgeMs: 1000 });
      await feed.load();
      await feed.takeOver();
      expect(feed.since(2).deletes).toHaveLength(5);
      await feed.record('h', 10_000); // everything older than 1 s at t=10 s goes
      expect(feed.since(7)).toMatchObject({ complete: true, deletes: [{ fid: 'h', seq: 8 }] });
      expect(feed.since(6).complete).toBe(false);
      await db.close();
    } finally {
      cleanup();
    }
  });

  it('carries block moves in the same sequence: paged, trimmed, reloaded and followed with the deletes', async () => {
    const { dir, cleanup } = tempDir();
    const standby = tempDir();
    try {
      let db = await openStateDb(dir);
      let feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), { maxEntries: 6, pageSize: 3 });
      await feed.load();
      await feed.takeOver();
      const fid = (block: number) => encodeFid({ block, key: 1n, cookie: 7 });
      await feed.record(fid(4), 1000);
      expect(await feed.recordMove(4, 2, 1001)).toBe(2);
      await feed.record(fid(5), 1002);
      await feed.recordMove(5, 1, 1003);
      await feed.recordMove(4, 3, 1004);
      // a page is `pageSize` events of either kind; deletes stay {seq, fid, at}
      const p1 = feed.since(0);
      expect(p1).toEqual({
        feed: feed.feedId,
        seq: 3,
        deletes: [{ seq: 1, fid: fid(4), at: 1000 }, { seq: 3, fid: fid(5), at: 1002 }],
        moves: [{ seq: 2, block: 4, version: 2, at: 1001 }],
        complete: true,
      });
      const p2 = feed.since(p1.seq);
      expect(p2).toMatchObject({ seq: 5, deletes: [], complete: true });
      expect(p2.moves).toEqual([{ seq: 4, block: 5, version: 1, at: 1003 }, { seq: 5, block: 4, version: 3, at: 1004 }]);
      // moves name no file: the delete replay for a block's late copies sees only fids
      expect(feed.fidsInBlock(4)).toEqual([fid(4)]);

      // a standby following the leader's writes ends with the same pages
      const sdb = await openStateDb(standby.dir);
      const follower = new DeleteFeed(jsonSublevel(sdb, 'delete-feed'), { maxEntries: 6, pageSize: 3 });
      await follower.load();
      for (const [k, v] of await jsonSublevel<unknown>(db, 'delete-feed').iterator().all()) follower.apply(k, v);
      expect(follower.since(0)).toEqual(p1);
      expect(follower.since(p1.seq)).toEqual(p2);
      follower.apply('000000000000002', undefined); // the leader trimmed through seq 2
      expect(follower.since(0).complete).toBe(false);
      expect(follower.since(2)).toMatchObject({ complete: true, deletes: [{ seq: 3 }], moves: [{ seq: 4 }, { seq: 5 }] });
      await sdb.close();
      await db.close();

      // reopened: both kinds come back, and moves count toward the bound like deletes
      db = await openStateDb(dir);
      feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), { maxEntries: 6, pageSize: 10 });
      await feed.load();
      await feed.takeOver();
      expect(feed.since(0)).toEqual({ ...p1, seq: 5, moves: [...p1.moves!, ...p2.moves!] });
      await feed.recordMove(6, 1, 2000);
      await feed.recordMove(7, 1, 2000); // 7 events, 6 kept: seq 1 (a delete) is gone
      const page = feed.since(0);
      expect(page.complete).toBe(false);
      expect(page.deletes.map((d) => d.seq)).toEqual([3]);
      expect(page.moves!.map((m) => m.seq)).toEqual([2, 4, 5, 6, 7]);
      expect(feed.since(1).complete).toBe(true);
      await db.close();

      // the trim was stored: a reopen starts from seq 2 and keeps counting from 7
      db = await openStateDb(dir);
      feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), { maxEntries: 6 });
      await feed.load();
      expect(feed.since(0).complete).toBe(false);
      expect(feed.since(1).moves!.map((m) => m.block)).toEqual([4, 5, 4, 6, 7]);
      expect(await feed.recordMove(8, 1, 2000)).toBe(8);
      await db.close();
    } finally {
      cleanup();
      standby.cleanup();
    }
  });

  it('a lost state starts a new feed with a new id, so a cursor into the old one is known to mean nothing', async () => {
    const a = tempDir();
    const b = tempDir();
    try {
      const dbA = await openStateDb(a.dir);
      const old = new DeleteFeed(jsonSublevel(dbA, 'delete-feed'));
      await old.load();
      await old.takeOver();
      for (const f of ['a', 'b']) await old.record(f);
      const dbB = await openStateDb(b.dir);
      const fresh = new DeleteFeed(jsonSublevel(dbB, 'delete-feed'));
      await fresh.load();
      await fresh.takeOver();
      for (const f of ['x', 'y', 'z']) await fresh.record(f);
      // by numbers alone a cursor at 2 looks fine on the new feed (it has 3 entries)
      const page = fresh.since(2);
      expect(page.complete).toBe(true);
      expect(page.feed).not.toBe(old.since(2).feed);
      await dbA.close();
      await dbB.close();
    } finally {
      a.cleanup();
      b.cleanup();
    }
  });
});
