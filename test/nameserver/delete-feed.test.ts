// The delete feed on a real LevelDB: ordered pages, cursors across reopen, and an honest
// "incomplete" once the feed has been trimmed past a cursor.
import { describe, expect, it } from 'vitest';
import { DeleteFeed } from '../../nameserver/delete-feed.ts';
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
      expect(feed.since(undefined)).toEqual({ feed: id, seq: 0, deletes: [], complete: true });
      for (const f of ['a', 'b', 'c']) await feed.record(f, 1000);
      const p1 = feed.since(0);
      expect(p1.deletes.map((d) => d.fid)).toEqual(['a', 'b']);
      expect(p1.complete).toBe(true);
      const p2 = feed.since(p1.seq);
      expect(p2.deletes.map((d) => d.fid)).toEqual(['c']);
      expect(feed.since(p2.seq)).toEqual({ feed: id, seq: 3, deletes: [], complete: true });
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
