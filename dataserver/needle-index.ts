// The needle index in LevelDB, and the per-block meta record (watermark + stats) that is
// written in the same batch as the entries it covers, so recovery knows exactly where
// indexed data ends and never scans more than the unindexed tail. Layouts (README.md,
// "Index v1") are pinned by golden tests; they are compact because a data server holds
// millions of entries.
import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Level } from 'level';
import { openLevelDurably } from '../src/base/durable-fs.ts';
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { IndexEntryCache } from './index-entry-cache.ts';

type Db = Level<Buffer, Buffer>;
/** A LevelDB batch op; `cached` carries the decoded form so applying it need not decode. */
export type IndexOp =
  | { type: 'put'; key: Buffer; value: Buffer; cached?: { block: number; key: bigint; entry: IndexEntry } }
  | { type: 'del'; key: Buffer; cached?: { block: number; key: bigint } };

const ENTRY_PREFIX = 0x6e; // 'n'
const META_PREFIX = 0x62; // 'b'
const ENTRY_KEY_SIZE = 12;
const ENTRY_VALUE_SIZE = 15;
const META_VERSION = 1;
const META_VALUE_SIZE = 28;

export interface IndexEntry {
  offset: number;
  /** whole record length on disk, padding included */
  length: number;
  cookie: number;
  flags: number;
}

export const META_SEALED = 0x01;
export const META_READONLY = 0x02;
/** set while a pull is copying the block: an incomplete copy is discarded on open */
export const META_INCOMPLETE = 0x04;

export interface BlockMeta {
  flags: number;
  gen: number;
  /** bytes of the block file covered by the index: the recovery watermark */
  end: number;
  liveCount: number;
  liveBytes: number;
  deletedBytes: number;
}

/**
 * A copy of a block meta with some fields changed, built field by field in one order so every
 * meta object shares one shape (object spreads of metas from different origins did not, and
 * the group commit's reads of them went megamorphic).
 */
export function metaWith(m: BlockMeta, change: Partial<BlockMeta> = {}): BlockMeta {
  return {
    flags: change.flags ?? m.flags,
    gen: change.gen ?? m.gen,
    end: change.end ?? m.end,
    liveCount: change.liveCount ?? m.liveCount,
    liveBytes: change.liveBytes ?? m.liveBytes,
    deletedBytes: change.deletedBytes ?? m.deletedBytes,
  };
}

export function entryKey(block: number, key: bigint): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_KEY_SIZE);
  b[0] = ENTRY_PREFIX;
  b.writeUInt32BE(block, 1);
  b.writeUIntBE(Number(key >> 24n), 5, 4);
  b.writeUIntBE(Number(key & 0xffffffn), 9, 3);
  return b;
}

export function decodeEntryKey(b: Buffer): { block: number; key: bigint } {
  return { block: b.readUInt32BE(1), key: (BigInt(b.readUIntBE(5, 4)) << 24n) | BigInt(b.readUIntBE(9, 3)) };
}

export function encodeEntry(e: IndexEntry): Buffer {
  const b = Buffer.allocUnsafe(ENTRY_VALUE_SIZE);
  b.writeUIntBE(e.offset, 0, 6);
  b.writeUInt32BE(e.length, 6);
  b.writeUInt32BE(e.cookie >>> 0, 10);
  b.writeUInt8(e.flags, 14);
  return b;
}

export function decodeEntry(b: Buffer): IndexEntry {
  if (b.length !== ENTRY_VALUE_SIZE) throw new Error(`index value has ${b.length} bytes, expected ${ENTRY_VALUE_SIZE}`);
  return { offset: b.readUIntBE(0, 6), length: b.readUInt32BE(6), cookie: b.readUInt32BE(10), flags: b.readUInt8(14) };
}

/** The key range holding every index entry of one block (entries sort by block, then key). */
function blockRange(block: number): { gte: Buffer; lte: Buffer } {
  const gte = Buffer.alloc(ENTRY_KEY_SIZE, 0);
  gte[0] = ENTRY_PREFIX;
  gte.writeUInt32BE(block, 1);
  const lte = Buffer.alloc(ENTRY_KEY_SIZE, 0xff);
  lte[0] = ENTRY_PREFIX;
  lte.writeUInt32BE(block, 1);
  return { gte, lte };
}

export function metaKey(block: number): Buffer {
  const b = Buffer.allocUnsafe(5);
  b[0] = META_PREFIX;
  b.writeUInt32BE(block, 1);
  return b;
}

export function encodeMeta(m: BlockMeta): Buffer {
  const b = Buffer.allocUnsafe(META_VALUE_SIZE);
  b.writeUInt8(META_VERSION, 0);
  b.writeUInt8(m.flags, 1);
  b.writeUInt32BE(m.gen, 2);
  b.writeUIntBE(m.end, 6, 6);
  b.writeUInt32BE(m.liveCount, 12);
  b.writeUIntBE(Math.max(0, m.liveBytes), 16, 6);
  b.writeUIntBE(Math.max(0, m.deletedBytes), 22, 6);
  return b;
}

export function decodeMeta(b: Buffer): BlockMeta {
  if (b.length !== META_VALUE_SIZE || b[0] !== META_VERSION) throw new Error('unknown block meta version');
  return {
    flags: b.readUInt8(1),
    gen: b.readUInt32BE(2),
    end: b.readUIntBE(6, 6),
    liveCount: b.readUInt32BE(12),
    liveBytes: b.readUIntBE(16, 6),
    deletedBytes: b.readUIntBE(22, 6),
  };
}

// A cause that outlives a reopen (a damaged table file) costs one reopen a second, not one per write.
const REOPEN_INTERVAL_MS = 1000;
// What a reopen writes besides the logs' contents as tables: a new MANIFEST and log, LOG lines.
const REOPEN_SPARE_BYTES = 1 << 20;
// LevelDB's write-ahead logs (its info log is `LOG`, without the extension).
const WAL_FILE = /^\d+\.log$/;

/**
 * LevelDB keeps a failed background flush or compaction (a table file or the MANIFEST could not
 * be written) as its sticky background error and answers every later write with it, even once
 * the cause is gone, until the database is reopened. A failed append to the write-ahead log is
 * not kept (the next write tries again); its message names the `.log` file.
 */
function isStickyError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (code === 'LEVEL_IO_ERROR' || code === 'LEVEL_CORRUPTION') && !/\d+\.log\b/.test((err as Error).message ?? '');
}

export class NeedleIndex {
  private readonly cache: IndexEntryCache;
  // Bound once: resolving label values on every read costs more than the read's bookkeeping.
  private readonly cacheHits: { inc(): void } | undefined;
  private readonly dbLookups: { inc(): void } | undefined;
  /** LevelDB's sticky background error, until a reopen clears it */
  private stuck: Error | undefined;
  /** a reopen attempt under way: operations wait for it rather than meet a closing database */
  private reopening: Promise<void> | undefined;
  private lastReopen = 0;
  private shut = false;

  private constructor(
    readonly db: Db,
    private readonly dir: string,
    cacheEntries: number,
    metrics: Metrics | undefined,
    private readonly log: Logger | undefined,
  ) {
    this.cache = new IndexEntryCache(cacheEntries);
    this.cacheHits = metrics?.indexLookups.labels({ source: 'cache' });
    this.dbLookups = metrics?.indexLookups.labels({ source: 'db' });
  }

  /** The cached entry, synchronously, or undefined (then use get()). Counts as a lookup when found. */
  cached(block: number, key: bigint): IndexEntry | undefined {
    const hit = this.cache.get(block, key);
    if (hit) this.cacheHits?.inc();
    return hit;
  }

  static async open(dir: string, opts: { cacheEntries?: number; blockCacheBytes?: number; metrics?: Metrics; log?: Logger } = {}): Promise<NeedleIndex> {
    const db = await openLevelDurably<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer', ...(opts.blockCacheBytes === undefined ? {} : { cacheSize: opts.blockCacheBytes }) });
    return new NeedleIndex(db, dir, opts.cacheEntries ?? 100_000, opts.metrics, opts.log);
  }

  /** `counted` lookups are the read path's, shown in ugcfs_index_lookups_total. */
  async get(block: number, key: bigint, counted = true): Promise<IndexEntry | undefined> {
    const hit = this.cache.get(block, key);
    if (hit) {
      if (counted) this.cacheHits?.inc();
      return hit;
    }
    if (counted) this.dbLookups?.inc();
    if (!this.settled) await this.ready();
    let v: Buffer | undefined;
    try {
      v = await this.db.get(entryKey(block, key));
    } catch (err) {
      throw this.failed(err, false);
    }
    if (v === undefined) return undefined;
    const e = decodeEntry(v);
    this.cache.set(block, key, e);
    return e;
  }

  /** Entries of one block, in key order. */
  async *entries(block: number): AsyncGenerator<{ key: bigint; entry: IndexEntry }> {
    await this.ready();
    const { gte: lo, lte: hi } = blockRange(block);
    for await (const [k, v] of this.db.iterator({ gte: lo, lte: hi })) {
      yield { key: decodeEntryKey(k).key, entry: decodeEntry(v) };
    }
  }

  async metas(): Promise<Map<number, BlockMeta>> {
    await this.ready();
    const out = new Map<number, BlockMeta>();
    for await (const [k, v] of this.db.iterator({ gte: Buffer.from([META_PREFIX]), lt: Buffer.from([META_PREFIX + 1]) })) {
      out.set(k.readUInt32BE(1), decodeMeta(v));
    }
    return out;
  }

  putOp(block: number, key: bigint, e: IndexEntry): IndexOp {
    return { type: 'put', key: entryKey(block, key), value: encodeEntry(e), cached: { block, key, entry: e } };
  }

  delOp(block: number, key: bigint): IndexOp {
    return { type: 'del', key: entryKey(block, key), cached: { block, key } };
  }

  /** The highest key indexed in a block (one reverse seek), or -1n when it has none. */
  async maxKey(block: number): Promise<bigint> {
    await this.ready();
    const { gte: lo, lte: hi } = blockRange(block);
    for await (const k of this.db.keys({ gte: lo, lte: hi, reverse: true, limit: 1 })) return decodeEntryKey(k).key;
    return -1n;
  }

  metaOp(block: number, m: BlockMeta): IndexOp {
    return { type: 'put', key: metaKey(block), value: encodeMeta(m) };
  }

  /**
   * Applies ops atomically, then updates the cache. Group commits do not sync: if LevelDB
   * loses its tail in a machine crash, the watermark in the same batch is lost with it, and
   * recovery re-indexes those records from the (fsynced) block file. `sync` is for a change
   * that a destructive step will rely on (compaction's switch before the old generation is
   * unlinked, a pulled copy marked whole before its source may be deleted).
   */
  async apply(ops: IndexOp[], opts: { sync?: boolean } = {}): Promise<void> {
    if (ops.length === 0) return;
    if (!this.settled || this.stuck !== undefined) await this.writable();
    try {
      await (opts.sync ? this.db.batch(ops, { sync: true }) : this.db.batch(ops));
    } catch (err) {
      throw this.failed(err, true);
    }
    for (const op of ops) {
      if (op.key[0] !== ENTRY_PREFIX) continue;
      const { block, key } = op.cached ?? decodeEntryKey(op.key);
      if (op.type === 'put') this.cache.set(block, key, op.cached?.entry ?? decodeEntry(op.value));
      else this.cache.delete(block, key);
    }
  }

  /** Removes every entry and the meta of a block. */
  async dropBlock(block: number): Promise<void> {
    const { gte: lo, lte: hi } = blockRange(block);
    await this.writable();
    try {
      await this.db.clear({ gte: lo, lte: hi });
      await this.db.del(metaKey(block));
    } catch (err) {
      throw this.failed(err, true);
    }
    this.cache.clear();
  }

  /** Compacts LevelDB's whole key range (benchmarks measure the settled footprint). */
  async compactAll(): Promise<void> {
    // `level` types omit compactRange, which classic-level (its Node implementation) has.
    const db = this.db as unknown as { compactRange(start: Buffer, end: Buffer): Promise<void> };
    await db.compactRange(Buffer.from([0x00]), Buffer.from([0xff]));
  }

  /** Forgets cached entries, after a compaction switched a block's offsets. */
  clearCache(): void {
    this.cache.clear();
  }

  async close(): Promise<void> {
    this.shut = true;
    await this.reopening?.catch(() => {});
    await this.db.close();
  }

  /**
   * Waits out a reopen under way. A database left closed by a failed reopen is tried again
   * (see recover); until that works, operations are refused 503. Operations already running
   * when a reopen closes the database: LevelDB finishes single reads and writes first, an open
   * iterator (scrub, compaction, key listing) is ended and its caller fails once.
   */
  private async ready(): Promise<void> {
    if (this.reopening !== undefined) await this.reopening.catch(() => {});
    if (this.db.status !== 'open' && !this.shut) await this.recover();
  }

  /** Open, and no reopen under way: the usual case, checked without a promise on the hot paths. */
  private get settled(): boolean {
    return this.reopening === undefined && this.db.status === 'open';
  }

  /** Before a write: LevelDB stuck on a background error is reopened first, once it can be. */
  private async writable(): Promise<void> {
    await this.ready();
    if (this.stuck !== undefined) await this.recover();
  }

  /** The error a caller gets (a closed database is a 503); notes a write's sticky background error. */
  private failed(err: unknown, writing: boolean): unknown {
    if ((err as { code?: unknown }).code === 'LEVEL_DATABASE_NOT_OPEN' && !this.shut) return this.unavailable(err);
    if (writing && this.stuck === undefined && isStickyError(err)) {
      this.stuck = err as Error;
      this.log?.warn({ err }, 'LevelDB stopped taking writes after a failed background flush or compaction (its sticky error); the index is reopened once its disk has room');
    }
    return err;
  }

  private unavailable(cause?: unknown): UgcfsError {
    return new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'the needle index is being reopened after a LevelDB error; try again', { cause });
  }

  /**
   * Reopens LevelDB in place, which clears its sticky error; one attempt at a time, shared by
   * every caller that needs it. Nothing acknowledged is lost: a write LevelDB refused was never
   * logged (and its block bytes were cut again), and opening replays the logs, including the
   * one whose flush failed, into tables. Those tables need room, so no attempt is made while
   * the disk is still full (the sticky error, 507 for a full disk, is the answer then), nor
   * more than once per REOPEN_INTERVAL_MS.
   */
  private recover(): Promise<void> {
    this.reopening ??= this.reopen().finally(() => {
      this.reopening = undefined;
    });
    return this.reopening;
  }

  private async reopen(): Promise<void> {
    if (this.shut) throw this.unavailable();
    const open = this.db.status === 'open';
    if (Date.now() - this.lastReopen < REOPEN_INTERVAL_MS || !(await this.roomToReopen())) {
      throw open && this.stuck !== undefined ? this.stuck : this.unavailable();
    }
    this.lastReopen = Date.now();
    try {
      if (open) await this.db.close();
      await this.db.open();
    } catch (err) {
      this.log?.error({ err }, 'could not reopen the needle index; index operations are refused until a later attempt works');
      throw this.unavailable(err);
    }
    this.stuck = undefined;
    this.log?.warn('needle index reopened; LevelDB takes writes again');
  }

  /** Free space for what opening writes: every write-ahead log's contents as a table, and some. */
  private async roomToReopen(): Promise<boolean> {
    try {
      let logs = 0;
      for (const name of await readdir(this.dir)) if (WAL_FILE.test(name)) logs += (await stat(join(this.dir, name))).size;
      const fs = await statfs(this.dir);
      return fs.bavail * fs.bsize >= logs + REOPEN_SPARE_BYTES;
    } catch {
      return false;
    }
  }
}
