// Read-through for unmapped legacy paths (`--legacy-origin URL`): the old origin's file is
// fetched with the limits uploads have (byte cap, deadline), checked and cleaned exactly as
// an upload is (type sniffed from the bytes, bomb guard, metadata stripped), and served;
// with `--legacy-import` it is also handed to the background importer. The old origin's
// 404 stays a 404, and identical concurrent misses share one fetch.
import { isUgcfsError, UgcfsError } from '../errors.ts';
import { fetchLegacy } from './legacy-fetch.ts';
import type { LegacyImporter } from './legacy-import.ts';
import type { LegacyResolver } from './legacy-resolver.ts';
import type { PipelineLimits } from './image-pipeline.ts';
import { checkUpload } from './image-pipeline.ts';

export interface ReadThroughOptions {
  /** resolves mapped paths (the name server's table, cached) */
  base: LegacyResolver;
  legacyOrigin: string;
  maxBytes: number;
  timeoutMs: number;
  limits: PipelineLimits;
  /** the origin's bounded decode capacity; checks run inside it */
  decodeSlot?: <T>(job: () => Promise<T>) => Promise<T>;
  importer?: LegacyImporter;
  /** counts outcomes: mapped, fetched, missing, failed */
  count?(result: string): void;
}

export function readThroughResolver(opts: ReadThroughOptions): LegacyResolver {
  const inflight = new Map<string, Promise<{ data: Buffer; mime: string } | undefined>>();
  const slot = opts.decodeSlot ?? (<T>(job: () => Promise<T>) => job());

  const fetchOnce = async (path: string) => {
    let r;
    try {
      r = await fetchLegacy(opts.legacyOrigin, path, { timeoutMs: opts.timeoutMs, maxBytes: opts.maxBytes });
    } catch (err) {
      opts.count?.('failed');
      // The old origin's trouble is not the client's: an oversize file is a bad gateway answer here.
      if (isUgcfsError(err, 'UGCFS_ERR_TOO_LARGE')) throw new UgcfsError('UGCFS_ERR_UPSTREAM', err.message);
      throw err;
    }
    if (r.status !== 'ok') {
      opts.count?.('missing');
      return undefined;
    }
    let checked;
    try {
      checked = await checkUpload(r.data, opts.limits, slot);
    } catch (err) {
      opts.count?.('failed');
      // What uploads refuse is not served either: the old origin's bytes are just as untrusted.
      if (isUgcfsError(err) && err.status < 500) throw new UgcfsError('UGCFS_ERR_UPSTREAM', `the old origin's file was refused: ${err.message}`);
      throw err;
    }
    opts.count?.('fetched');
    opts.importer?.enqueue(path, checked.data, checked.mime);
    return { data: checked.data, mime: checked.mime };
  };

  return {
    lookup: (path) => opts.base.lookup(path),
    fetchThrough(path) {
      let p = inflight.get(path);
      if (!p) {
        p = fetchOnce(path).finally(() => inflight.delete(path));
        inflight.set(path, p);
      }
      return p;
    },
  };
}
