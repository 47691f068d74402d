// Following the name server's delete feed: origins purge their caches of files deleted
// anywhere (`ugcfs rm`, other origins, migration).
import type { DeleteFeedPage } from '../wire/protocol.ts';

export interface DeleteWatchHandlers {
  onDelete: (fids: string[]) => void | Promise<void>;
  onGap?: () => void | Promise<void>;
  intervalMs?: number;
}

/**
 * Polls the delete feed and calls `onDelete` with the fids deleted since the last poll.
 * `onGap` is called when deletes may have been missed (the feed was trimmed past our cursor,
 * or reset): drop every cached file then. Polling errors are retried quietly. Returns a stop
 * function.
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
          const moved = page.seq !== cursor;
          cursor = page.seq;
          if (page.deletes.length === 0 || !moved) break;
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
