// The cluster client: what origins, the admin CLI, migration and tests use to store and
// fetch files. One instance per process is meant to be shared: it holds the location cache
// and the fids assigned ahead. It is a facade over
//   src/clients/file-writer.ts     assign, replicated write, retries on another block
//   src/clients/file-reader.ts     read, head and stat with failover between replicas
//   src/clients/file-deleter.ts    the delete protocol
//   src/clients/delete-feed-watch.ts  following the delete feed
//   src/clients/location-cache.ts  block locations and the replica each fid reads first
// which speak to the roles through src/clients/nameserver-client.ts and dataserver-client.ts.
import { DataserverClient } from './dataserver-client.ts';
import { watchDeletes, type DeleteWatchHandlers } from './delete-feed-watch.ts';
import { FileDeleter } from './file-deleter.ts';
import { FileReader } from './file-reader.ts';
import { FileWriter } from './file-writer.ts';
import { LOCATION_TTL_MS, LocationCache, SEALED_LOCATION_TTL_MS, type LocationCacheStats } from './location-cache.ts';
import { NameserverClient } from './nameserver-client.ts';
import { agentFor } from './http-client.ts';
import type { ClusterClientOptions, FileHead, FileStat, ReadFile, WriteMeta, WrittenFile } from './cluster-types.ts';
import type { ClusterClientConfig } from './cluster-options.ts';
import { splitUrls } from '../base/config.ts';
import type { BlockLocation, ClusterStatus, DeleteFeedPage, LegacyMapping, LegacyPut, NameserverStatus, QuotaUsage } from '../wire/protocol.ts';

export type { ClusterClientOptions, FileHead, FileStat, ReadFile, WriteMeta, WrittenFile } from './cluster-types.ts';
export { CLUSTER_CLIENT_OPTIONS } from './cluster-options.ts';

export class ClusterClient {
  private readonly ns: NameserverClient;
  private readonly locations: LocationCache;
  private readonly writer: FileWriter;
  private readonly reader: FileReader;
  private readonly deleter: FileDeleter;

  constructor(opts: ClusterClientOptions) {
    // Without a timeoutMs each client keeps its own defaults (NS_TIMEOUT_MS, DS_TIMEOUTS).
    const timeout = opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs };
    const failover = opts.nameserverFailoverMs === undefined ? {} : { failoverMs: opts.nameserverFailoverMs };
    const dispatcher = opts.dispatcher;
    this.ns = new NameserverClient({ nameservers: opts.nameserver, secret: opts.secret, adminToken: opts.adminToken, dispatcher, ...timeout, ...failover });
    const ds = new DataserverClient({ secret: opts.secret, dispatcher, ...timeout });
    this.locations = new LocationCache(this.ns, {
      ttlMs: opts.locationTtlMs ?? LOCATION_TTL_MS,
      sealedTtlMs: opts.sealedLocationTtlMs ?? SEALED_LOCATION_TTL_MS,
      size: opts.locationCacheSize ?? 10_000,
    });
    this.writer = new FileWriter({
      ns: this.ns,
      ds,
      locations: this.locations,
      attempts: Math.max(1, opts.writeAttempts ?? 4),
      replicas: opts.replicas,
      assignBatch: Math.min(100, Math.max(1, opts.assignBatch ?? 100)),
      writeBatch: opts.writeBatch ?? 32,
    });
    this.reader = new FileReader(ds, this.locations);
    this.deleter = new FileDeleter(this.ns, ds, this.locations);
  }

  /** The name server calls go to first (the leader when known); `nameservers` lists them all. */
  get nameserver(): string {
    return this.ns.url;
  }

  /** Every listed name server's base URL. */
  get nameservers(): readonly string[] {
    return this.ns.urls;
  }

  // ---- files

  /** Stores a file on every replica of a block; resolves only when all have it. */
  write(data: Uint8Array, meta: WriteMeta = {}): Promise<WrittenFile> {
    return this.writer.write(data, meta);
  }

  /** The file's bytes and metadata; a wrong cookie or missing file is UGCFS_ERR_NOT_FOUND. */
  read(fid: string): Promise<ReadFile> {
    return this.reader.read(fid);
  }

  /** Metadata without the bytes. */
  head(fid: string): Promise<FileHead> {
    return this.reader.head(fid);
  }

  /** Where the file lives: asks every live replica of its block whether it holds the file. */
  stat(fid: string): Promise<FileStat> {
    return this.reader.stat(fid);
  }

  /**
   * Deletes the file on every replica; replicas that miss it get it replayed by the name
   * server. Throws UGCFS_ERR_NOT_FOUND when no replica had the file.
   */
  delete(fid: string): Promise<void> {
    return this.deleter.delete(fid);
  }

  /** The block's live replicas, from cache unless stale or `refresh`. */
  locate(block: number, refresh = false): Promise<BlockLocation> {
    return this.locations.locate(block, refresh);
  }

  /** What the location cache has done: name-server lookups, cache hits, locations dropped. */
  locationStats(): LocationCacheStats {
    return this.locations.stats();
  }

  // ---- delete feed

  /** Deletes recorded after `after` (a sequence number); without it, just the current cursor. */
  deletesSince(after?: number): Promise<DeleteFeedPage> {
    return this.ns.deletesSince(after);
  }

  /**
   * Polls the delete feed and calls `onDelete` with the fids deleted since the last poll;
   * `onGap` when deletes may have been missed (drop every cached file then). Returns a stop
   * function. While it runs, this client's location cache follows the feed too: a moved
   * block's cached location is dropped, and a gap drops every sealed one.
   */
  watchDeletes(o: DeleteWatchHandlers): () => void {
    const locations = this.locations;
    const since = async (after?: number) => {
      const page = await this.deletesSince(after);
      // A new cursor (start, or a reset feed): moves before it will never be read, so no
      // sealed location cached before it is trusted further.
      if (after === undefined) locations.sealedUnknown();
      return page;
    };
    return watchDeletes(since, {
      ...o,
      async onMove(moves) {
        for (const m of moves) locations.moved(m.block, m.version);
        await o.onMove?.(moves);
      },
      async onGap() {
        locations.sealedUnknown();
        await o.onGap?.();
      },
    });
  }

  // ---- cluster

  status(): Promise<ClusterStatus> {
    return this.ns.status();
  }

  /** Every listed name server as its GET /leader answers (alive: false when it does not). */
  nameserverStatus(): Promise<NameserverStatus[]> {
    return this.ns.nameservers();
  }

  // ---- legacy table (served by the name server's legacy module)

  /** The fid a legacy path is mapped to, or undefined. */
  async legacyGet(path: string): Promise<string | undefined> {
    return (await this.ns.legacyLookup(path))?.fid;
  }

  /** The whole mapping row (fid, sha256, size...), or undefined. */
  legacyLookup(path: string): Promise<LegacyMapping | undefined> {
    return this.ns.legacyLookup(path);
  }

  legacySet(path: string, fid: string, extra: Omit<LegacyPut, 'path' | 'fid'> = {}): Promise<LegacyMapping> {
    return this.ns.legacySet(path, fid, extra);
  }

  legacyDelete(path: string): Promise<void> {
    return this.ns.legacyDelete(path);
  }

  /** Upload quotas (the name server's quota module): `delta` bytes more or fewer for `owner`. */
  quotaChange(owner: string, delta: number, limit?: number): Promise<QuotaUsage> {
    return this.ns.quotaChange(owner, delta, limit);
  }

  /** Drops cached locations (the HTTP agent is the caller's, or shared: either needs no closing). */
  async close(): Promise<void> {
    this.locations.clear();
    this.writer.clear();
  }
}

export function clusterClientFromConfig(c: ClusterClientConfig): ClusterClient {
  return new ClusterClient({ nameserver: splitUrls(c.nameserver), secret: c.clusterSecret, adminToken: c.adminToken, timeoutMs: c.timeoutMs, dispatcher: agentFor(c.tlsCa ?? '') });
}
