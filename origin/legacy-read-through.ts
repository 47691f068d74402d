// Read-through for unmapped legacy paths (`--legacy-origin URL`): the old origin's file is
// fetched with the limits uploads have (byte cap, deadline); an image is checked and cleaned
// exactly as an upload is (type sniffed from the bytes, bomb guard, metadata stripped), any
// other file is kept byte for byte with its type from the bytes or the path's name
// (origin/file-check.ts, checkLegacyFile), and served;
// with `--legacy-import` it is also handed to the background importer. The old origin's
// 404 stays a 404 (and is remembered for a few seconds, so junk URLs cannot turn the origin
// into a load generator against the old server), identical concurrent misses share one
// fetch, and fetches in flight to the old origin are bounded.
import { ClusterClient } from '../src/clients/cluster-client.ts';
import { splitUrls } from '../src/base/config.ts';
import { isUgcfsError, UgcfsError } from '../src/base/errors.ts';
import { fetchLegacy } from './legacy-fetch.ts';
import { LegacyImporter, type ImportStore } from './legacy-import.ts';
import type { LegacyResolver } from './legacy-resolver.ts';
import type { PipelineLimits } from './image-pipeline.ts';
import { checkLegacyFile } from './file-check.ts';
import { withoutCredentials, type Logger } from '../src/base/log.ts';
import { originCredential, type OriginConfig } from './config.ts';

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
  /** bounds fetches in flight to the old origin */
  fetchSlot?: <T>(job: () => Promise<T>) => Promise<T>;
  /** how long the old origin's 404 is remembered (default 5 s) */
  missTtlMs?: number;
  /** counts outcomes: mapped, fetched, missing, failed */
  count?(result: string): void;
}

const MAX_REMEMBERED_MISSES = 10_000;
/** Fetches in flight to the old origin per origin process: an old single file server is easily swamped. */
const OLD_ORIGIN_CONNECTIONS = 16;

export function readThroughResolver(opts: ReadThroughOptions): LegacyResolver {
  const inflight = new Map<string, Promise<{ data: Buffer; mime: string } | undefined>>();
  const direct = <T>(job: () => Promise<T>) => job();
  const slot = opts.decodeSlot ?? direct;
  const fetchSlot = opts.fetchSlot ?? direct;
  const missTtl = opts.missTtlMs ?? 5_000;
  // path -> until (ms); Map order is insertion order, so the oldest goes first when full.
  const misses = new Map<string, number>();

  const fetchOnce = async (path: string) => {
    const until = misses.get(path);
    if (until !== undefined) {
      if (until > Date.now()) return undefined;
      misses.delete(path);
    }
    let r;
    try {
      r = await fetchSlot(() => fetchLegacy(opts.legacyOrigin, path, { timeoutMs: opts.timeoutMs, maxBytes: opts.maxBytes }));
    } catch (err) {
      opts.count?.('failed');
      // The old origin's trouble is not the client's: an oversize file is a bad gateway answer here.
      if (isUgcfsError(err, 'UGCFS_ERR_TOO_LARGE')) throw new UgcfsError('UGCFS_ERR_UPSTREAM', err.message);
      throw err;
    }
    if (r.status !== 'ok') {
      opts.count?.('missing');
      if (missTtl > 0) {
        if (misses.size >= MAX_REMEMBERED_MISSES) misses.delete(misses.keys().next().value!);
        misses.set(path, Date.now() + missTtl);
      }
      return undefined;
    }
    let checked;
    try {
      checked = await checkLegacyFile(r.data, path, opts.limits, slot);
    } catch (err) {
      opts.count?.('failed');
      // A damaged image (or an empty file, which the cluster cannot store) is not served
      // either: the old origin's bytes are as untrusted as an upload's.
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

/** A counting semaphore: at most `max` jobs run at once, the rest wait in order. */
export function boundedSlot(max: number): <T>(job: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    // A finishing job hands its slot straight to the next waiter, so no newcomer can slip in between.
    if (running >= max) await new Promise<void>((r) => waiting.push(r));
    else running++;
    try {
      return await job();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}

/** The legacy options make sense together (checked before anything starts by whoever can). */
export function checkLegacyOptions(config: { legacyOrigin: string; legacyImport: boolean }): void {
  if (config.legacyImport && !config.legacyOrigin) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--legacy-import imports what --legacy-origin reads through; give --legacy-origin URL too');
}

export interface LegacyResolverContext {
  config: OriginConfig;
  log: Logger;
  /** the name server's legacy table, cached (defaultLegacyResolver); `forget` drops a cached absence */
  table: LegacyResolver & { forget?(path: string): void };
  /** where --legacy-import writes: the origin's cluster client (a client of its own when undefined) */
  importStore: ImportStore | undefined;
}

/**
 * The origin's legacy resolver as configured: the name server's table alone, or with
 * `--legacy-origin` read-through in front of it, and with `--legacy-import` the background
 * importer behind it. startOrigin builds it from the origin's config.
 */
export function legacyResolverFor(ctx: LegacyResolverContext): LegacyResolver & { close(): Promise<void> } {
  const { config, log, table } = ctx;
  checkLegacyOptions(config);
  if (!config.legacyOrigin) return { lookup: (path) => table.lookup(path), close: async () => undefined };
  let importer: LegacyImporter | undefined;
  if (config.legacyImport) {
    importer = new LegacyImporter({
      store: ctx.importStore ?? new ClusterClient({ nameserver: splitUrls(config.nameserver), secret: originCredential(config) }),
      log,
      // Drop the cached "not mapped" answer, so the next request is served from the cluster.
      onImported: (path) => table.forget?.(path),
    });
  }
  log.info({ legacyOrigin: withoutCredentials(config.legacyOrigin), legacyImport: config.legacyImport }, 'legacy read-through enabled');
  const resolver = readThroughResolver({
    base: table,
    legacyOrigin: config.legacyOrigin,
    maxBytes: config.maxUploadBytes,
    timeoutMs: config.resizeTimeoutMs,
    limits: { maxPixels: config.maxPixels, timeoutMs: config.resizeTimeoutMs },
    decodeSlot: boundedSlot(config.resizeConcurrency),
    fetchSlot: boundedSlot(OLD_ORIGIN_CONNECTIONS),
    ...(importer ? { importer } : {}),
  });
  // Imports in flight finish on shutdown (queued ones are dropped: a later request queues them again).
  return { ...resolver, close: async () => importer?.close() };
}
