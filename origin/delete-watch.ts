// Deletes made around this origin (`ugcfs rm`, another origin outside --peers, migration)
// reach it through the name server's delete feed: each polled batch is tombstoned and
// purged from the memory and disk tiers; a gap in the feed (cursor older than what the name
// server keeps, or its state reset) means some deletes are unknown, so every cache is dropped
// or sent back to storage for confirmation. The feed's block moves need nothing here: the
// cluster client's watchDeletes hands them to its location cache (src/clients/location-cache.ts),
// which keeps sealed blocks' locations for long on the strength of it. A batch purged here
// is then handed to `onDeleted` (the CDN edges' purge, origin/edge-purge.ts): those deletes
// are acknowledged, since the feed lists only deletes storage has made.
import type { Logger } from '../src/base/log.ts';
import type { OriginCore } from './origin-core.ts';

/** The slice of ClusterClient (src/clients/cluster-client.ts) this needs. */
export interface DeleteFeedSource {
  watchDeletes(o: { onDelete: (fids: string[]) => void | Promise<void>; onGap?: () => void | Promise<void>; intervalMs?: number }): () => void;
}

export interface DeleteWatchOptions {
  intervalMs: number;
  /** how long a fid learnt from the feed stays refused locally */
  tombstoneMs: number;
  log: Logger;
  /** deletes learnt, after the local purge (--purge-edges) */
  onDeleted?: (fids: string[]) => void | Promise<void>;
}

/** Starts watching; returns the stop function. */
export function watchDeletesInto(feed: DeleteFeedSource, core: OriginCore, o: DeleteWatchOptions): () => void {
  return feed.watchDeletes({
    intervalMs: o.intervalMs,
    async onDelete(fids) {
      // A throw here leaves the feed cursor where it was, so the batch is retried next poll.
      await core.purgeMany(fids, o.tombstoneMs);
      await o.onDeleted?.(fids);
      o.log.debug({ fids: fids.length }, 'purged files deleted elsewhere');
    },
    onGap() {
      const dropped = core.forgetAll();
      o.log.warn({ dropped }, 'delete feed has a gap: memory cache dropped, disk entries will be re-checked against storage');
    },
  });
}
