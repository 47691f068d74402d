// Lazy migration: files the origin fetched through from the old origin are imported into
// the cluster in the background and mapped, so they keep being served once the old origin
// is gone. Each path is imported once (a path in flight or done is not queued again), the
// queue is bounded (when full a path is dropped and simply queued again by a later request),
// and a mapping is created only if none exists, so two origins importing the same path at
// once leave one mapping and remove the loser's copy.
import { createHash } from 'node:crypto';
import { isUgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { LegacyMapping, LegacyPut } from '../src/wire/protocol.ts';

/** The slice of ClusterClient the importer uses. */
export interface ImportStore {
  write(data: Buffer, meta: { mime: string; owner: string }): Promise<{ fid: string }>;
  read(fid: string): Promise<{ data: Buffer }>;
  delete(fid: string): Promise<unknown>;
  legacyLookup(path: string): Promise<LegacyMapping | undefined>;
  legacySet(path: string, fid: string, extra?: Omit<LegacyPut, 'path' | 'fid'>): Promise<LegacyMapping>;
}

export interface LegacyImporterOptions {
  store: ImportStore;
  log: Logger;
  /** called once a path is mapped, so resolver caches drop their "not mapped" memory */
  onImported?(path: string, fid: string): void;
  maxQueue?: number;
  concurrency?: number;
  /** paths remembered as done, so repeat hits cost nothing */
  maxRemembered?: number;
}

export const IMPORT_OWNER = 'legacy-import';

export interface ImportStats {
  queued: number;
  inFlight: number;
  imported: number;
  dropped: number;
  failed: number;
}

export class LegacyImporter {
  private readonly queue: Array<{ path: string; data: Buffer; mime: string }> = [];
  private readonly pending = new Set<string>();
  private readonly done = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private closed = false;
  readonly stats: ImportStats = { queued: 0, inFlight: 0, imported: 0, dropped: 0, failed: 0 };

  constructor(private readonly opts: LegacyImporterOptions) {}

  /** Queues a fetched file for import; false when it is already handled, queued, or the queue is full. */
  enqueue(path: string, data: Buffer, mime: string): boolean {
    if (this.closed || this.pending.has(path) || this.done.has(path)) return false;
    if (this.queue.length >= (this.opts.maxQueue ?? 256)) {
      this.stats.dropped++;
      return false;
    }
    this.pending.add(path);
    this.queue.push({ path, data, mime });
    this.stats.queued = this.queue.length;
    this.pump();
    return true;
  }

  /** Resolves once the queue is empty and nothing is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Stops taking work, drops what is still queued, and waits for imports in flight. */
  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) this.pending.delete(j.path);
    await this.idle();
  }

  private pump(): void {
    while (this.running.size < (this.opts.concurrency ?? 2) && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.stats.queued = this.queue.length;
      const p: Promise<void> = this.importOne(job.path, job.data, job.mime).finally(() => {
        this.running.delete(p);
        this.stats.inFlight = this.running.size;
        this.pending.delete(job.path);
        this.pump();
      });
      this.running.add(p);
      this.stats.inFlight = this.running.size;
    }
  }

  private remember(path: string): void {
    const max = this.opts.maxRemembered ?? 100_000;
    if (this.done.size >= max) this.done.delete(this.done.values().next().value!);
    this.done.add(path);
  }

  private async importOne(path: string, data: Buffer, mime: string): Promise<void> {
    const { store, log } = this.opts;
    try {
      const existing = await store.legacyLookup(path);
      if (existing) {
        this.remember(path);
        return;
      }
      const sha256 = createHash('sha256').update(data).digest('hex');
      const { fid } = await store.write(data, { mime, owner: IMPORT_OWNER });
      const back = await store.read(fid);
      if (createHash('sha256').update(back.data).digest('hex') !== sha256) {
        await store.delete(fid).catch(() => undefined);
        throw new Error('read-back after import did not match');
      }
      try {
        await store.legacySet(path, fid, { sha256, size: data.length, ifAbsent: true });
      } catch (err) {
        // Another origin (or a migrate run) mapped it first: theirs stands, ours goes.
        if (!isUgcfsError(err, 'UGCFS_ERR_CONFLICT')) throw err;
        await store.delete(fid).catch(() => undefined);
        this.remember(path);
        return;
      }
      this.remember(path);
      this.stats.imported++;
      this.opts.onImported?.(path, fid);
      log.info({ path, fid, size: data.length }, 'legacy file imported');
    } catch (err) {
      this.stats.failed++;
      log.warn({ err, path }, 'legacy import failed; a later request will retry it');
    }
  }
}
