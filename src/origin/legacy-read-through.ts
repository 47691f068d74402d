// Read-through for unmapped legacy paths (`--legacy-origin URL`): the old origin's file is
// fetched with the limits uploads have (byte cap, deadline), checked and cleaned exactly as
// an upload is (type sniffed from the bytes, bomb guard, metadata stripped), and served;
// with `--legacy-import` it is also handed to the background importer. The old origin's
// 404 stays a 404, and identical concurrent misses share one fetch.
import { ClusterClient } from '../cluster-client.ts';
import { isUgcfsError, UgcfsError } from '../errors.ts';
import { fetchLegacy } from './legacy-fetch.ts';
import { LegacyImporter } from './legacy-import.ts';
import type { LegacyResolver } from './legacy-resolver.ts';
import type { PipelineLimits } from './image-pipeline.ts';
import { checkUpload } from './image-pipeline.ts';
import type { LegacyResolverContext } from './main.ts';

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

/** A counting semaphore, so read-through checks share a bounded amount of sharp. */
function boundedSlot(max: number): <T>(job: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (running >= max) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await job();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/**
 * The origin's legacy resolver as configured: the name server's table alone, or with
 * `--legacy-origin` read-through in front of it, and with `--legacy-import` the background
 * importer behind it. Pass it to startOrigin as `legacyResolver`.
 */
export function legacyResolverFor(ctx: LegacyResolverContext): LegacyResolver {
  const { config, log, table } = ctx;
  if (!config.legacyOrigin) return table;
  let importer: LegacyImporter | undefined;
  if (config.legacyImport) {
    const client = new ClusterClient({ nameserver: config.nameserver, secret: config.clusterSecret });
    importer = new LegacyImporter({
      store: client,
      log,
      // Drop the cached "not mapped" answer, so the next request is served from the cluster.
      onImported: (path) => (table as LegacyResolver & { forget?(p: string): void }).forget?.(path),
    });
  }
  log.info({ legacyOrigin: config.legacyOrigin, legacyImport: config.legacyImport }, 'legacy read-through enabled');
  return readThroughResolver({
    base: table,
    legacyOrigin: config.legacyOrigin,
    maxBytes: config.maxUploadBytes,
    timeoutMs: config.resizeTimeoutMs,
    limits: { maxPixels: config.maxPixels, timeoutMs: config.resizeTimeoutMs },
    decodeSlot: boundedSlot(config.resizeConcurrency),
    ...(importer ? { importer } : {}),
  });
}
