// The origin's read path, independent of HTTP: originals and variants out of the memory
// tier, the disk tier, the owning peer, or the pipeline — in that order — with identical
// concurrent misses joined into one computation, and deletes enforced by tombstones that
// outlive any computation started before them. When deletes may have been missed (a gap in
// the name server's delete feed) every cache generation is dropped at once: a computation
// started under an older generation neither stores its result nor is joined.
import { createHash } from 'node:crypto';
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { makeResponse, type CachedResponse } from './cached-response.ts';
import type { DiskCache } from './disk-cache.ts';
import { legacyKey } from './edge-purge-keys.ts';
import type { FileStore } from './file-store.ts';
import { jobPixels } from './image-size.ts';
import { PIPELINE_VERSION, renderVariant, sanitizeOriginal, type PipelineLimits } from './image-pipeline.ts';
import { fileType, typeByMime } from './file-type.ts';
import { formatFromMime } from './media-type.ts';
import { MemoryCache } from './memory-cache.ts';
import type { PeerRing } from './peer-ring.ts';
import type { ResizeGate } from './resize-gate.ts';
import type { Variant } from './variant-url.ts';
import type { WatermarkSource } from './watermark.ts';

/** Where a served file comes from: a fid in the cluster, or bytes from elsewhere (legacy read-through). */
export type Source =
  | { kind: 'fid'; fid: string }
  | { kind: 'bytes'; id: string; load: () => Promise<{ data: Buffer; mime: string } | undefined> };

export interface Served {
  entry: CachedResponse;
  xCache: 'HIT' | 'MISS';
}

/** Everything the core works with, fixed when it is made (startOrigin builds each from the config). */
export interface OriginCoreDeps {
  readonly store: FileStore;
  readonly memory: MemoryCache<CachedResponse>;
  readonly disk: DiskCache | undefined;
  /** the ring of origins sharing variants (--peers); undefined when this origin is alone */
  readonly peers: PeerRing | undefined;
  readonly gate: ResizeGate;
  readonly limits: PipelineLimits;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** how long a deleted fid stays refused locally, whatever any cache or computation holds */
  readonly tombstoneMs?: number;
  /** the overlays of watermark presets (origin/watermark.ts) */
  readonly watermarks?: WatermarkSource;
}

function sourceId(s: Source): string {
  return s.kind === 'fid' ? s.fid : `L:${s.id}`;
}

/** The names CDN edges file a source's answers under (Surrogate-Key, Cache-Tag). */
function edgeKeys(s: Source): string[] {
  return [s.kind === 'fid' ? s.fid : legacyKey(s.id)];
}

function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('base64url').slice(0, 16);
}

export class OriginCore {
  private readonly flights = new Map<string, { promise: Promise<CachedResponse>; generation: number }>();
  private readonly tombstones = new Map<string, number>();
  /** fids confirmed to exist by storage in this process; disk entries of others are re-checked */
  private readonly verified = new MemoryCache<{ bytes: number }>(100_000, 1);
  private readonly tombstoneMs: number;
  /** bumped by forgetAll(); results computed under an older one are not cached */
  private generation = 0;

  constructor(private readonly d: OriginCoreDeps) {
    this.tombstoneMs = d.tombstoneMs ?? 10 * 60_000;
  }

  isDead(fid: string): boolean {
    const until = this.tombstones.get(fid);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.tombstones.delete(fid);
    return false;
  }

  /** Refuses `fid` from now on and drops it from every local cache. */
  async purge(fid: string): Promise<void> {
    await this.purgeMany([fid]);
  }

  /**
   * purge() for a batch, walking each cache once. `tombstoneMs` may be shorter than the
   * default for deletes learnt from the feed: those only have to outlive computations that
   * were already running, not stand in for a broadcast that might not reach everyone.
   */
  async purgeMany(fids: readonly string[], tombstoneMs = this.tombstoneMs): Promise<void> {
    if (fids.length === 0) return;
    const now = Date.now();
    for (const fid of fids) {
      // never shorten a tombstone an earlier, longer purge left
      if ((this.tombstones.get(fid) ?? 0) < now + tombstoneMs) this.tombstones.set(fid, now + tombstoneMs);
      this.verified.delete(fid);
    }
    if (this.tombstones.size > 100_000) for (const [k, until] of this.tombstones) if (until <= now) this.tombstones.delete(k);
    const dead = new Set(fids);
    this.d.memory.deleteWhere((k) => dead.has(k.slice(0, k.indexOf('|'))));
    await this.d.disk?.purgeMany(dead);
  }

  /**
   * Forgets everything that could belong to a file deleted without this origin hearing of
   * it: the memory tier is emptied and every disk entry must be confirmed by storage again
   * (one head per fid) before it is served. Returns how many memory entries went.
   */
  forgetAll(): number {
    this.generation++;
    this.verified.deleteWhere(() => true);
    return this.d.memory.deleteWhere(() => true);
  }

  /** Whether a result obtained under `generation` may still be cached. */
  private keeps(s: Source, generation: number): boolean {
    return generation === this.generation && !(s.kind === 'fid' && this.isDead(s.fid));
  }

  /** Undoes a tombstone when the delete it guarded did not happen. */
  revive(fid: string): void {
    this.tombstones.delete(fid);
  }

  private assertAlive(s: Source): void {
    if (s.kind === 'fid' && this.isDead(s.fid)) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
  }

  private joined(key: string, compute: () => Promise<CachedResponse>): { promise: Promise<CachedResponse>; leader: boolean } {
    const running = this.flights.get(key);
    if (running && running.generation === this.generation) {
      this.d.metrics.cacheLookups.inc({ tier: 'inflight', result: 'hit' });
      return { promise: running.promise, leader: false };
    }
    const promise: Promise<CachedResponse> = compute().finally(() => {
      if (this.flights.get(key)?.promise === promise) this.flights.delete(key);
    });
    this.flights.set(key, { promise, generation: this.generation });
    return { promise, leader: true };
  }

  /** The memory-tier key of a fid's original (variantKey undefined) or variant. */
  static memoryKey(fid: string, variantKey: string | undefined): string {
    return `${fid}|${variantKey ?? 'o'}`;
  }

  /** Memory-tier lookup only, for the synchronous hit path. */
  peek(fid: string, memoryKey: string): CachedResponse | undefined {
    if (this.tombstones.size > 0 && this.isDead(fid)) return undefined;
    return this.d.memory.get(memoryKey);
  }

  async original(s: Source): Promise<Served> {
    this.assertAlive(s);
    const key = OriginCore.memoryKey(sourceId(s), undefined);
    const hot = this.d.memory.get(key);
    if (hot) {
      this.d.metrics.cacheLookups.inc({ tier: 'memory', result: 'hit' });
      return { entry: hot, xCache: 'HIT' };
    }
    this.d.metrics.cacheLookups.inc({ tier: 'memory', result: 'miss' });
    const { promise } = this.joined(key, () => this.loadOriginal(s, key));
    const entry = await promise;
    this.assertAlive(s);
    return { entry, xCache: 'MISS' };
  }

  private async loadOriginal(s: Source, key: string): Promise<CachedResponse> {
    const generation = this.generation;
    let data: Buffer;
    let lastModified: number;
    let recorded: string;
    if (s.kind === 'fid') {
      const f = await this.d.store.get(s.fid);
      if (this.keeps(s, generation)) this.verified.set(s.fid, { bytes: 1 });
      data = f.data;
      lastModified = f.uploadTime;
      recorded = f.mime;
    } else {
      const got = await s.load();
      if (!got) throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND', 'the legacy path is not mapped and the old origin does not have it');
      data = got.data;
      lastModified = 0;
      recorded = got.mime;
    }
    // The served type comes from the bytes; the type recorded at write time (named after the
    // file's name) only stands in when the bytes show none (file-type.ts).
    const type = fileType(data, typeByMime(recorded));
    const format = type.image;
    const body = format ? await sanitizeOriginal(data, format, this.d.limits) : data;
    const etag = s.kind === 'fid' ? `"${s.fid}.o${PIPELINE_VERSION}"` : `"L${shortHash(s.id + '\0' + createHash('sha256').update(body).digest('hex'))}.o${PIPELINE_VERSION}"`;
    const entry = makeResponse(body, {
      mime: type.mime,
      etag,
      lastModified,
      negotiated: false,
      attachment: !type.inline,
      keys: edgeKeys(s),
    });
    if (this.keeps(s, generation)) this.d.memory.set(key, entry);
    return entry;
  }

  /**
   * A variant of `s`. `opts.admit` runs once this origin knows it must make the variant or
   * ask a peer for it (no memory or disk hit, no identical computation to join); it throws
   * to refuse (rate limits, --max-variants-per-file), so hits are never refused.
   */
  async variant(s: Source, v: Variant, opts: { forward: boolean; admit?: () => void }): Promise<Served> {
    this.assertAlive(s);
    const id = sourceId(s);
    const key = OriginCore.memoryKey(id, v.key);
    const hot = this.d.memory.get(key);
    if (hot) {
      this.d.metrics.cacheLookups.inc({ tier: 'memory', result: 'hit' });
      return { entry: hot, xCache: 'HIT' };
    }
    this.d.metrics.cacheLookups.inc({ tier: 'memory', result: 'miss' });
    let fromDisk = false;
    const { promise } = this.joined(key, async () => {
      const generation = this.generation;
      const warm = await this.fromDisk(s, v, key, generation);
      if (warm) { fromDisk = true; return warm; }
      opts.admit?.();
      const owner = opts.forward && s.kind === 'fid' ? this.d.peers?.ownerOf(key) : undefined;
      if (owner && s.kind === 'fid') {
        const got = await this.d.peers!.fetch(owner, s.fid, v.key, v.negotiated);
        if (got) {
          const entry = makeResponse(got.body, { mime: got.mime, etag: got.etag, lastModified: got.lastModified, negotiated: v.negotiated, attachment: false, keys: edgeKeys(s) });
          if (this.keeps(s, generation)) this.d.memory.set(key, entry);
          return entry;
        }
      }
      return this.compute(s, v, key, generation);
    });
    const entry = await promise;
    this.assertAlive(s);
    return { entry, xCache: fromDisk ? 'HIT' : 'MISS' };
  }

  private async fromDisk(s: Source, v: Variant, key: string, generation: number): Promise<CachedResponse | undefined> {
    if (!this.d.disk || s.kind !== 'fid') return undefined;
    const got = await this.d.disk.get(s.fid, v.key);
    this.d.metrics.cacheLookups.inc({ tier: 'disk', result: got ? 'hit' : 'miss' });
    if (!got) return undefined;
    if (!this.verified.get(s.fid)) {
      // Written by an earlier run: the file may have been deleted while this origin was down
      // and missed the purge broadcast. One cheap head per fid per run settles it.
      try {
        await this.d.store.head(s.fid);
        if (this.keeps(s, generation)) this.verified.set(s.fid, { bytes: 1 });
      } catch (err) {
        if ((err as UgcfsError).code === 'UGCFS_ERR_NOT_FOUND') await this.d.disk.purge(s.fid);
        throw err;
      }
    }
    const entry = makeResponse(got.body, { mime: got.meta.mime, etag: got.meta.etag, lastModified: got.meta.lastModified, negotiated: got.meta.negotiated, attachment: false, keys: edgeKeys(s) });
    if (this.keeps(s, generation)) this.d.memory.set(key, entry);
    return entry;
  }

  private async compute(s: Source, v: Variant, key: string, generation: number): Promise<CachedResponse> {
    const { entry: original } = await this.original(s);
    if (!formatFromMime(original.mime)) throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', `variants can only be made of images; this file is ${original.mime}`);
    // Read before taking a resize slot; a watermarked variant without its overlay fails.
    const overlay = await this.d.watermarks?.overlayFor(v);
    const rendered = await this.d.gate.run(async () => {
      const started = process.hrtime.bigint();
      const r = await renderVariant(original.body, v, this.d.limits, overlay);
      this.d.metrics.resizeDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
      this.d.metrics.resizes.inc({ format: r.format });
      return r;
    }, jobPixels(original.body, this.d.limits.maxPixels));
    // Bytes from outside the cluster (legacy read-through) may change, so their variants
    // are tagged by the source's content, not its path.
    const etag = `"${s.kind === 'fid' ? s.fid : 'L' + shortHash(original.etag)}.${shortHash(v.key)}.v${PIPELINE_VERSION}"`;
    const entry = makeResponse(rendered.data, { mime: rendered.mime, etag, lastModified: original.lastModified, negotiated: v.negotiated, attachment: false, keys: edgeKeys(s) });
    const alive = () => this.keeps(s, generation);
    if (alive()) {
      this.d.memory.set(key, entry);
      if (this.d.disk && s.kind === 'fid') {
        // Awaited inside the flight, so once any request has seen this variant the next one
        // finds it on disk even with no memory tier; a failed write only costs a recompute.
        await this.d.disk
          .set(s.fid, { key: v.key, mime: entry.mime, etag, lastModified: entry.lastModified, negotiated: v.negotiated }, entry.body, alive)
          .catch((err: unknown) => this.d.log.warn({ err: (err as Error).message }, 'disk cache write failed'));
      }
    }
    return entry;
  }
}
