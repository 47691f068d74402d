// Following the name server's delete feed: origins purge their caches of files deleted
// anywhere (`ugcfs rm`, other origins, migration), and the cluster client's location cache
// drops sealed blocks' locations the feed says moved (its `moves`, in the same sequence).
import type { BlockMove, DeleteFeedPage } from '../wire/protocol.ts';

export interface DeleteWatchHandlers {
  onDelete: (fids: string[]) => void | Promise<void>;
  /** replica-set changes (repair, move, drain) since the last poll */
  onMove?: (moves: BlockMove[]) => void | Promise<void>;
  onGap?: () => void | Promise<void>;
  intervalMs?: number;
}

/**
 * Polls the delete feed and calls `onDelete` with the fids deleted since the last poll and
 * `onMove` with the blocks moved. `onGap` is called when events may have been missed (the
 * feed was trimmed past our cursor, or reset): drop every cached file, and every cached
 * sealed location, then. Polling errors are retried quietly. Returns a stop function.
 */
export function watchDeletes(deletesSince: (after?: number) => Promise<DeleteFeedPage>, o: DeleteWatchHandlers): () => void {
  let cursor: number | undefined;
  let feed: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    try {
      if (cursor === undefined) {
        const head = await deletesSince();
        cursor = head.seq;
        feed = head.feed;
      } else {
        for (;;) {
          const page = await deletesSince(cursor);
          if (page.feed !== feed) {
            // A new feed (the name server's state was lost): whatever its numbers, our
            // cursor says nothing about what it missed.
            await o.onGap?.();
            const head = await deletesSince();
            cursor = head.seq;
            feed = head.feed;
            break;
          }
          if (!page.complete) await o.onGap?.();
          if (page.deletes.length > 0) await o.onDelete(page.deletes.map((d) => d.fid));
          const moves = page.moves ?? [];
          if (moves.length > 0) await o.onMove?.(moves);
          const advanced = page.seq !== cursor;
          cursor = page.seq;
          // A full page may have more behind it; a page of moves alone counts as much as deletes.
          if (page.deletes.length + moves.length === 0 || !advanced) break;
        }
      }
    } catch {
      // name server down or restarting: try again next interval
    }
    if (!stopped) timer = setTimeout(() => void poll(), o.intervalMs ?? 1000).unref();
  };
  void poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}
