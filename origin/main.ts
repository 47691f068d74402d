// startOrigin: the caching image origin (docs/ORIGIN.md). Everything an origin is made of is
// decided here, from its config alone, and built before it listens: storage, caches, the
// image pipeline, legacy read-through and import (--legacy-origin, --legacy-import), the
// peer ring (--peers), and under --workers N this process's place in the pool. So
// `ugcfs origin`, the all-in-one `ugcfs server` and any other caller get the same origin
// from the same config. Everything stateful hangs off this call, so several origins can
// share a process.
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { splitUrls } from '../src/base/config.ts';
import { UgcfsError } from '../src/base/errors.ts';
import { createHttpServer, listen } from '../src/http/http-server.ts';
import { createLogger, type Logger } from '../src/base/log.ts';
import { aggregatedMetricsText } from '../src/base/metrics.ts';
import type { RunningServer } from '../src/http/running-server.ts';
import { ClusterClient } from '../src/clients/cluster-client.ts';
import { agentFor } from '../src/clients/http-client.ts';
import { ERROR_CACHE_CONTROL, type CachedResponse } from './cached-response.ts';
import { originCredential, type OriginConfig } from './config.ts';
import { watchDeletesInto, type DeleteFeedSource } from './delete-watch.ts';
import { edgePurgerFor } from './edge-purge.ts';
import { DiskCache } from './disk-cache.ts';
import { floodControl } from './flood-control.ts';
import { clusterFileStore, type FileStore } from './file-store.ts';
import { installHitPath, type HitPath } from './hit-path.ts';
import { tuneSharp } from './image-pipeline.ts';
import { legacyResolverFor } from './legacy-read-through.ts';
import { defaultLegacyResolver } from './legacy-resolver.ts';
import { MemoryCache } from './memory-cache.ts';
import { OriginCore } from './origin-core.ts';
import { PeerRing, ringSelf } from './peer-ring.ts';
import { registerReads } from './read-routes.ts';
import { pixelBudget, ResizeGate } from './resize-gate.ts';
import { registerUpload } from './upload-route.ts';
import { callerOf } from './upload-auth.ts';
import { parsePresets, presetWatermarks } from './presets.ts';
import { WatermarkSource } from './watermark.ts';
import { poolMember, removeStaleWorkerCaches, startPool, workerConfig, type PoolMember } from './worker-pool.ts';

export interface StartOriginOptions {
  log?: Logger;
  /** storage; defaults to a ClusterClient on --nameserver */
  store?: FileStore;
  /** where deletes made around this origin are learnt; defaults to that ClusterClient (none when `store` is given) */
  deleteFeed?: DeleteFeedSource;
}

export interface RunningOrigin extends RunningServer {
  /** set in a worker of `--workers N`: tell the primary once serving (ready), take its stop (onShutdown) */
  worker?: PoolMember;
  /** set in the primary of `--workers N`, which only supervises that many workers */
  workers?: number;
}

function loadPresets(text: string) {
  const t = text.trim();
  if (t === '') return parsePresets(undefined);
  let json: unknown;
  try {
    json = JSON.parse(t.startsWith('{') ? t : readFileSync(t, 'utf8'));
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--presets is neither a JSON object nor a readable JSON file: ${(err as Error).message}`);
  }
  return parsePresets(json);
}

function parseSizes(list: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const s of list) {
    const m = /^(\d{1,5})?x(\d{1,5})?$/.exec(s.trim());
    if (!m || (m[1] === undefined && m[2] === undefined)) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--allowed-sizes: ${JSON.stringify(s)} is not WxH, Wx or xH`);
    out.add(`${m[1] ?? ''}x${m[2] ?? ''}`);
  }
  return out;
}

/**
 * Starts the origin `config` describes. Under `--workers N` (N > 1) the process that calls
 * this becomes the pool's primary, which only supervises; each worker it forks calls this
 * again and serves with its share of the cache budgets (origin/worker-pool.ts).
 */
export async function startOrigin(config: OriginConfig, opts: StartOriginOptions = {}): Promise<RunningOrigin> {
  const log = opts.log ?? createLogger({ name: 'origin', level: config.logLevel });
  if (config.workers > 1 && cluster.isPrimary) {
    const pool = await startPool(config, log);
    return { url: pool.url, close: () => pool.close(), workers: config.workers };
  }
  const worker = poolMember();
  if (worker) return { ...(await serve(workerConfig(config, worker.index), log.child({ worker: worker.index }), opts, worker)), worker };
  // One process after a run with --workers: its other workers' disk caches would only hold disk.
  await removeStaleWorkerCaches(config.cacheDir, 1);
  return serve(config, log, opts, undefined);
}

/** One serving origin process: the whole origin, or one worker of a pool. */
async function serve(config: OriginConfig, log: Logger, opts: StartOriginOptions, pool: PoolMember | undefined): Promise<RunningServer> {
  const credential = originCredential(config);
  const presets = loadPresets(config.presets);
  const allowedSizes = parseSizes(config.allowedSizes);
  if (config.strict && presets.size === 0 && allowedSizes.size === 0) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--strict needs --presets or --allowed-sizes, or no variant could ever be served');
  }
  const self = ringSelf(config);
  // Calls to the name server, the data servers and the peer origins trust --tls-ca.
  const dispatcher = agentFor(config.tlsCa);
  const client = opts.store ? undefined : new ClusterClient({ nameserver: splitUrls(config.nameserver), secret: credential, dispatcher, locationTtlMs: config.locationTtlMs, sealedLocationTtlMs: config.sealedLocationTtlMs, locationCacheSize: config.locationCacheSize });
  const store = opts.store ?? clusterFileStore(client!);
  const deleteFeed = opts.deleteFeed ?? client;
  // Legacy paths: the name server's table, with read-through and import in front when configured.
  const resolver = legacyResolverFor({ config, log, table: defaultLegacyResolver(store), importStore: client });
  let stopWatching = () => {};
  try {
    tuneSharp(config.resizeConcurrency);
    const auth = { uploadTokens: config.uploadTokens, adminToken: config.adminToken };
    const { app, metrics, access, metricsJson } = createHttpServer({
      role: 'origin',
      log,
      accessLog: config.accessLog,
      // every route declares its credential (checked before any body byte is read); only
      // POST /upload takes more than the default 64 KiB (--max-upload-bytes)
      clusterSecret: config.clusterSecret,
      // its peers' calls (PEER_ROUTES, auth kind 'file') present what this origin presents
      originSecret: credential,
      auth: {
        upload: (req) => {
          try {
            callerOf(req, auth);
          } catch (err) {
            metrics.uploads.inc({ result: 'unauthorized' });
            throw err;
          }
        },
        owner: (req) => void callerOf(req, auth),
      },
      limits: config,
      tls: config,
      listenHost: config.host,
      ownUrls: [config.publicUrl],
      errorCacheControl: ERROR_CACHE_CONTROL,
      defaultMetrics: true,
      // This worker's own registry is read here; only the siblings' cross the pool's channel.
      metricsText: pool ? async () => aggregatedMetricsText([await metricsJson(), ...(await pool.fanOut('collect', null))]) : undefined,
      health: () => ({
        ...(pool ? { worker: pool.index, workers: pool.count } : {}),
        memoryCacheBytes: memory.usedBytes,
        memoryCacheEntries: memory.size,
        diskCacheBytes: disk?.usedBytes ?? 0,
        resize: gate.stats(),
        hitPathMemo: hitPath?.memoSize() ?? 0,
        ...edges?.health(),
        ...flood.health(),
      }),
    });
    const gate = new ResizeGate(config.resizeConcurrency, config.resizeQueue, (n) => metrics.resizeQueue.set(n), () => metrics.resizeRejected.inc(), pixelBudget(config.maxPixels, config.workers));
    const flood = floodControl(config, client, metrics, log);
    let hitPath: HitPath | undefined;
    const memory = new MemoryCache<CachedResponse>(config.memoryCacheBytes);
    const disk = config.cacheDir ? new DiskCache(config.cacheDir, config.cacheBytes) : undefined;
    await disk?.init();
    const limits = { maxPixels: config.maxPixels, timeoutMs: config.resizeTimeoutMs };
    const peers = self === undefined ? undefined : new PeerRing(config.peers, self, credential, config.resizeTimeoutMs + 5_000, metrics, log, dispatcher);
    const watermarks = new WatermarkSource(store, presetWatermarks(presets));
    await watermarks.check(log);
    const core = new OriginCore({ store, memory, disk, peers, gate, limits, metrics, log, watermarks });
    // --purge-edges, --purge-webhook: CDN edges forget deleted files (origin/edge-purge.ts)
    const edges = await edgePurgerFor(config, { peers, workerIndex: pool?.index ?? 0, workers: pool?.count ?? 1, metrics, log, dispatcher });
    pool?.handle('collect', () => metricsJson());
    pool?.handle('purge', (fids) => core.purgeMany(fids as string[]));
    pool?.handle('revive', (fid) => core.revive(fid as string));
    // A delete answered by this worker is forgotten by its siblings before the answer; the
    // delete feed would tell them too, but only within --delete-feed-interval-ms.
    const purge = async (fid: string) => {
      await core.purge(fid);
      await pool?.fanOut('purge', [fid]);
    };
    const revive = (fid: string) => {
      core.revive(fid);
      void pool?.fanOut('revive', fid);
    };

    // Upload answers name the listen URL when no --public-url is given; it is known once listening.
    let url = '';
    const resolve = { presets, strict: config.strict, allowedSizes, maxOutputPixels: config.maxOutputPixels, negotiate: config.negotiateFormat };
    await registerUpload(app, { store, gate: flood.uploadGate, limiter: flood.uploadLimiter, quota: flood.quota, limits, auth, maxUploadBytes: config.maxUploadBytes, uploadTypes: config.uploadTypes, metrics, log, publicUrl: () => config.publicUrl || url });
    registerReads(app, {
      core, store, resolver, resolve, signingKeys: config.signingKeys, auth,
      peers: () => peers, purge, revive, metrics, log,
      variantLimiter: flood.variantLimiter, budget: flood.budget, quota: flood.quota,
      served: edges && ((fid, u, legacyPath) => edges.served(fid, u, legacyPath)), deleted: edges && ((fid) => edges.deleted([fid])),
    });

    // Watching starts before the first request can fill a cache, so no delete falls between
    // what was cached and where the feed cursor starts. A feed tombstone only has to outlive
    // computations already running when the delete was learnt: a resize (bounded by its
    // timeout) or a peer fetch (timeout + 5 s), plus slack.
    const feedTombstoneMs = 2 * config.resizeTimeoutMs + 30_000;
    if (deleteFeed) stopWatching = watchDeletesInto(deleteFeed, core, { intervalMs: config.deleteFeedIntervalMs, tombstoneMs: feedTombstoneMs, log, onDeleted: edges && ((fids) => edges.deleted(fids)) });
    url = await listen(app, config.host, config.port);
    hitPath = installHitPath(app.server, { core, metrics, signed: config.signingKeys.length > 0, resolve, access, purge: edges });
    return {
      url,
      async close() {
        stopWatching();
        // after the last answer: a delete in flight still journals its purge, and every URL
        // served is in the snapshot of what was served
        await app.close();
        await edges?.close();
        await resolver.close();
      },
    };
  } catch (err) {
    stopWatching();
    await resolver.close();
    throw err;
  }
}
