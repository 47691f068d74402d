// The delete-feed watcher against a real DeleteFeed on LevelDB (in process, no HTTP): moves
// reach onMove in order beside the deletes, pages holding only moves are followed like pages
// of deletes, and a trimmed or reset feed calls onGap.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { watchDeletes } from '../../src/clients/delete-feed-watch.ts';
import { encodeFid } from '../../src/wire/file-id.ts';
import type { BlockMove, DeleteFeedPage } from '../../src/wire/protocol.ts';
import { DeleteFeed } from '../../nameserver/delete-feed.ts';
import { jsonSublevel, openStateDb } from '../../nameserver/state-db.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

type Db = Awaited<ReturnType<typeof openStateDb>>;

const dirs: Array<{ cleanup: () => void }> = [];
const dbs: Db[] = [];
let stop = () => {};

async function newFeed(o: { pageSize?: number; maxEntries?: number } = {}): Promise<DeleteFeed> {
  const d = tempDir();
  dirs.push(d);
  const db = await openStateDb(d.dir);
  dbs.push(db);
  const feed = new DeleteFeed(jsonSublevel(db, 'delete-feed'), o);
  await feed.load();
  await feed.takeOver();
  return feed;
}

/** What the watcher heard, and a way to hold its polls while the feed changes under it. */
function listener() {
  const heard = { fids: [] as string[], moves: [] as Array<[number, number]>, gaps: 0, polls: 0 };
  let gate: Promise<void> | undefined;
  let open = () => {};
  return {
    heard,
    hold() {
      gate = new Promise((r) => (open = r));
    },
    release() {
      gate = undefined;
      open();
    },
    source: (feed: () => DeleteFeed) => async (after?: number): Promise<DeleteFeedPage> => {
      if (gate) await gate;
      heard.polls++;
      // through JSON, as the route answers
      return JSON.parse(JSON.stringify(feed().since(after))) as DeleteFeedPage;
    },
    handlers: {
      intervalMs: 20,
      onDelete: (fids: string[]) => void heard.fids.push(...fids),
      onMove: (moves: BlockMove[]) => void heard.moves.push(...moves.map((m): [number, number] => [m.block, m.version])),
      onGap: () => void heard.gaps++,
    },
  };
}

/** Lets the watcher's promise chain run to its next timer (setImmediate is not faked). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}

const fid = (block: number, key: number) => encodeFid({ block, key: BigInt(key), cookie: 1 });

beforeEach(() => {
  stop = () => {};
});
afterEach(async () => {
  stop();
  await Promise.all(dbs.splice(0).map((db) => db.close()));
  for (const d of dirs.splice(0)) d.cleanup();
});

describe('delete feed watch', () => {
  it('hands moves to onMove in order beside the deletes, reading pages of moves alone on the same wake-up', async () => {
    const feed = await newFeed({ pageSize: 2 });
    const l = listener();
    // Only the watcher's own timer is faked: its wake-ups happen when the test says.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      stop = watchDeletes(l.source(() => feed), { ...l.handlers, intervalMs: 1000 });
      await settle();
      expect(l.heard.polls).toBe(1); // the head
      await feed.record(fid(1, 1));
      for (let v = 1; v <= 5; v++) await feed.recordMove(7, v);
      await feed.record(fid(2, 1));
      await vi.advanceTimersByTimeAsync(1000);
      await settle();
      // 7 events in pages of 2, pages 2 and 3 holding moves alone: all read on this one wake-up
      expect(l.heard.fids).toEqual([fid(1, 1), fid(2, 1)]);
      expect(l.heard.moves).toEqual([[7, 1], [7, 2], [7, 3], [7, 4], [7, 5]]);
      expect(l.heard.polls).toBe(1 + 5); // four pages and the empty one that ends the wake-up
      expect(l.heard.gaps).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it('calls onGap when moves or deletes were trimmed past its cursor, and when the feed is reset', async () => {
    let feed = await newFeed({ maxEntries: 3 });
    const l = listener();
    stop = watchDeletes(l.source(() => feed), l.handlers);
    await waitFor('the head', () => l.heard.polls >= 1);
    l.hold();
    for (let b = 1; b <= 5; b++) await feed.recordMove(b, 2);
    l.release();
    await waitFor('the gap', () => l.heard.gaps === 1);
    await waitFor('what is left', () => l.heard.moves.length === 3);
    expect(l.heard.moves).toEqual([[3, 2], [4, 2], [5, 2]]);

    // a name server that lost its state: a new feed whose numbers say nothing of the old one
    l.hold();
    feed = await newFeed();
    for (let b = 1; b <= 9; b++) await feed.recordMove(b, 1);
    l.release();
    await waitFor('the reset', () => l.heard.gaps === 2);
    await feed.recordMove(42, 7);
    await waitFor('moves on the new feed', () => l.heard.moves.at(-1)?.[0] === 42);
    // the new feed is followed from its head: what it held before the reset is not replayed
    expect(l.heard.moves.slice(3)).toEqual([[42, 7]]);
  });
});
