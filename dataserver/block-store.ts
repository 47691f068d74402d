// The data server's storage engine: the blocks in `<data>/blocks`, the index in
// `<data>/index`, and the verbs on them. Opening reconciles every block with the index
// (block-open.ts).
import { unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { HEADERS, type BlockKeyState, type BlockReport, type CompactResult, type ScrubResult } from '../src/wire/protocol.ts';
import { Block, BlockFile, blockFileName } from './block.ts';
import { mkdirDurable, syncDir } from '../src/base/durable-fs.ts';
import { compactBlock } from './block-compact.ts';
import { listBlockKeys } from './block-keys.ts';
import { readNeedle, type ReadOptions } from './block-read.ts';
import { recoverTail } from './block-recover.ts';
import { scrubBlock } from './block-scrub.ts';
import { BlockWriter } from './block-write.ts';
import { AlignedStages } from './aligned-stage.ts';
import { ClusterClock } from './cluster-clock.ts';
import { encodeNeedleParts, encodeTombstone, type Needle, type NeedleMeta } from './needle.ts';
import { META_READONLY, metaWith } from './needle-index.ts';
import { Quarantine } from './quarantine.ts';
import { crashHook, type StoreContext } from './store-context.ts';
import { EMPTY_META, openBlocks, openIndex, type Recovered } from './block-open.ts';
import { SYNC_READ_DEFAULTS, SyncReadGate, type SyncReadGateOptions } from './sync-read-gate.ts';

export interface StoreOptions {
  /** the data directory; blocks and index live below it */
  dir: string;
  fsync?: boolean;
  /** append whole pages with O_DIRECT (block-write-direct.ts; default: true) */
  directWrites?: boolean;
  /** quarantined files older than this are removed (default 0: kept until removed by hand) */
  quarantineKeepMs?: number;
  /** see StoreContext.tombstoneKeepMs (default: for ever) */
  tombstoneKeepMs?: number;
  /** the time source for tombstones (default: a clock that has not heard from a name server) */
  clock?: ClusterClock;
  blockSize: number;
  cacheEntries?: number;
  /** LevelDB's block cache for the index (undefined: LevelDB's default, 8 MiB) */
  indexBlockCacheBytes?: number;
  metrics?: Metrics;
  log?: Logger;
  /** test-only crash step (UGCFS_TEST_CRASH_AT) */
  crashAt?: string;
  /** reads in place (sync-read-gate.ts): true for the defaults, false for none (default: true) */
  syncReads?: boolean | SyncReadGateOptions;
}

export interface PutResult {
  offset: number;
  size: number;
  crc: number;
  /** the same record was already stored (a retried forward): nothing was appended */
  existed: boolean;
}

function syncReadGate(opts: StoreOptions): SyncReadGate | undefined {
  if (opts.syncReads === false) return undefined;
  const o = opts.syncReads === true || opts.syncReads === undefined ? SYNC_READ_DEFAULTS : opts.syncReads;
  return new SyncReadGate(o, (us, length) => {
    opts.metrics?.syncReadPauses.inc();
    opts.log?.warn({ us: Math.round(us), bytes: length, pauseMs: o.pauseMs }, 'reads in place were slower than the page cache: reads go to the thread pool for a pause');
  });
}

/** A whole copy, as block reports count it: not removed, not being pulled, no pull left unfinished. */
export function heldWhole(b: Block): boolean {
  return !b.deleted && !b.pulling && !b.incomplete;
}

/** how often quarantined files are checked for expiry */
const QUARANTINE_CHECK_MS = 10 * 60_000;

export class BlockStore {
  readonly blocks = new Map<number, Block>();
  /** what opening had to repair: records re-indexed past watermarks, bytes of torn tails cut (kept in quarantine/), files quarantined */
  readonly recovered: Recovered = { records: 0, cutBytes: 0, leftoverFiles: 0, quarantined: 0 };
  private closed = false;
  /** ids whose creation is under way, so two concurrent creates cannot both write the file */
  private readonly creating = new Set<number>();

  /** expires quarantined files (quarantine.ts) while the store is open */
  private quarantineTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly quarantineKeepMs: number,
    readonly ctx: StoreContext,
  ) {}

  static async open(opts: StoreOptions): Promise<BlockStore> {
    const blocksDir = join(opts.dir, 'blocks');
    await mkdirDurable(blocksDir);
    const quarantine = await Quarantine.open(join(opts.dir, 'quarantine'), { metrics: opts.metrics, log: opts.log });
    const index = await openIndex(opts);
    const store = new BlockStore(opts.quarantineKeepMs ?? 0, {
      blocksDir,
      index,
      metrics: opts.metrics,
      log: opts.log,
      fsync: opts.fsync ?? true,
      directStages: opts.directWrites === false ? undefined : new AlignedStages(),
      blockSize: opts.blockSize,
      tombstoneKeepMs: opts.tombstoneKeepMs ?? 0,
      clock: opts.clock ?? new ClusterClock(),
      quarantine,
      crashPoint: crashHook(opts.crashAt ?? ''),
      syncReads: syncReadGate(opts),
    });
    try {
      await store.load();
      if (store.quarantineKeepMs > 0) {
        store.quarantineTimer = setInterval(() => void store.expireQuarantine(), QUARANTINE_CHECK_MS);
        store.quarantineTimer.unref();
      }
    } catch (err) {
      await index.close().catch(() => {});
      throw err;
    }
    return store;
  }

  private async load(): Promise<void> {
    await openBlocks(this.ctx, this.recovered, (b) => this.attach(b));
    this.updateGauges();
  }

  private attach(b: Block): Block {
    b.writer = new BlockWriter(b, this.ctx);
    this.blocks.set(b.id, b);
    return b;
  }

  block(id: number): Block {
    const b = this.blocks.get(id);
    if (!b || b.deleted) throw new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${id} is not on this data server`);
    return b;
  }

  has(id: number): boolean {
    return this.blocks.has(id);
  }

  /** Creates an empty block; false when it already exists (creation is idempotent). */
  async createBlock(id: number, flags = 0): Promise<boolean> {
    this.assertOpen();
    if (this.blocks.has(id) || this.creating.has(id)) return false;
    this.creating.add(id);
    try {
      const file = await BlockFile.open(this.ctx.blocksDir, id, 0, true);
      await file.fh.sync();
      await syncDir(this.ctx.blocksDir);
      const meta = metaWith(EMPTY_META, { flags });
      await this.ctx.index.apply([this.ctx.index.metaOp(id, meta)]);
      this.attach(new Block(id, this.ctx.blocksDir, file, meta));
    } finally {
      this.creating.delete(id);
    }
    this.updateGauges();
    return true;
  }

  /**
   * `dataCrc` is the CRC32-C of `data` when the caller already computed it. `repair`: a record
   * verify copies from another replica of the block, taken even when the block is sealed or
   * read-only (never over an existing key, like any put).
   */
  async put(blockId: number, meta: NeedleMeta, data: Buffer, dataCrc?: number, opts: { repair?: boolean } = {}): Promise<PutResult> {
    this.assertOpen();
    const b = this.block(blockId);
    const refusal = opts.repair ? b.repairRefusal() : b.writeRefusal();
    if (refusal) throw new UgcfsError('UGCFS_ERR_BLOCK_READONLY', `block ${blockId} is ${refusal}`);
    const crc = dataCrc ?? crc32c(data);
    const { parts, length } = encodeNeedleParts(meta, data, 0, crc);
    if (length > this.ctx.blockSize) {
      throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `a ${data.length}-byte file does not fit a ${this.ctx.blockSize}-byte block`);
    }
    if (b.pendingKeys.has(meta.key)) throw new UgcfsError('UGCFS_ERR_DUPLICATE_KEY', `key ${meta.key} is being written`);
    b.pendingKeys.add(meta.key);
    try {
      if (b.maxKey === undefined) {
        const indexed = await this.ctx.index.maxKey(blockId);
        // Concurrent first puts may have raised it meanwhile: keep the larger.
        b.maxKey = b.maxKey === undefined || indexed > b.maxKey ? indexed : b.maxKey;
      }
      const mayExist = meta.key <= b.maxKey;
      if (!mayExist) b.maxKey = meta.key;
      const existing = mayExist ? await this.ctx.index.get(blockId, meta.key, false) : undefined;
      if (existing) {
        // A retried forward of the very same record succeeds without a second copy.
        if (existing.cookie === meta.cookie) {
          const old = await readNeedle(b, this.ctx, meta.key, meta.cookie).catch(() => undefined);
          if (old && old.dataCrc === crc && old.data.length === data.length) return { offset: existing.offset, size: data.length, crc, existed: true };
        }
        throw new UgcfsError('UGCFS_ERR_DUPLICATE_KEY', `block ${blockId} already holds key ${meta.key}`);
      }
      const offset = await b.writer.append({ kind: 'put', key: meta.key, cookie: meta.cookie, parts, length, repair: opts.repair });
      return { offset, size: data.length, crc, existed: false };
    } finally {
      b.pendingKeys.delete(meta.key);
    }
  }

  /**
   * A block this server does not hold, or holds only partly (a pull still copying it in), is
   * BLOCK_NOT_FOUND rather than NOT_FOUND: the reader must try another replica, whereas
   * NOT_FOUND from a whole copy is final. Not async: on the hot path an async wrapper is one
   * promise more per read.
   */
  read(blockId: number, key: bigint, cookie: number, opts?: ReadOptions): Promise<Needle> {
    const b = this.blocks.get(blockId);
    if (!b || b.deleted || b.pulling || b.incomplete) {
      return Promise.reject(
        new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${blockId} is not (wholly) on this data server`, {
          headers: { [HEADERS.errorCode]: 'UGCFS_ERR_BLOCK_NOT_FOUND' },
        }),
      );
    }
    return readNeedle(b, this.ctx, key, cookie, opts);
  }

  /** Appends a tombstone and drops the index entry. A wrong cookie is NOT_FOUND. */
  async delete(blockId: number, key: bigint, cookie: number): Promise<void> {
    this.assertOpen();
    const b = this.block(blockId);
    if (b.pulling) throw new UgcfsError('UGCFS_ERR_BLOCK_READONLY', `block ${blockId} is being copied from a peer`);
    // A write of the same key is in flight: let it land first (yielding to I/O, not spinning).
    while (b.pendingKeys.has(key)) await new Promise((r) => setImmediate(r));
    b.pendingKeys.add(key);
    try {
      const e = await this.ctx.index.get(blockId, key, false);
      if (!e || e.cookie !== cookie) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      const tomb = encodeTombstone(key, cookie, this.ctx.clock.stampNow());
      await b.writer.append({ kind: 'del', key, cookie, parts: [tomb], length: tomb.length, deletedLength: e.length });
    } finally {
      b.pendingKeys.delete(key);
    }
  }

  async setReadonly(blockId: number, readonly: boolean): Promise<BlockReport> {
    const b = this.block(blockId);
    await b.lock.run(async () => {
      const flags = readonly ? b.meta.flags | META_READONLY : b.meta.flags & ~META_READONLY;
      if (flags === b.meta.flags) return;
      const meta = metaWith(b.meta, { flags });
      await this.ctx.index.apply([this.ctx.index.metaOp(b.id, meta)]);
      b.meta = meta;
    });
    return b.report();
  }

  /** Removes a block: file first, then its index entries, so a crash in between cannot revive it. */
  async deleteBlock(blockId: number): Promise<void> {
    const b = this.block(blockId);
    await b.lock.run(async () => {
      b.deleted = true;
      b.file.retire();
      await unlink(b.file.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await syncDir(this.ctx.blocksDir);
      await this.ctx.index.dropBlock(blockId);
      this.blocks.delete(blockId);
    });
    this.updateGauges();
  }

  /**
   * Takes a block out of service without destroying it: its file moves to quarantine/
   * (quarantine.ts), then its index entries go. What a name server orders removed (an extra
   * copy, an abandoned creation) goes this way, never straight to unlink. `why` is logged.
   */
  async quarantineBlock(blockId: number, why: string): Promise<void> {
    const b = this.block(blockId);
    // An empty copy holds nothing to keep (an abandoned creation): removed outright.
    if (b.meta.end === 0 && !b.pulling && (await b.file.fh.stat()).size === 0) return this.deleteBlock(blockId);
    await b.lock.run(async () => {
      b.deleted = true;
      b.file.retire();
      await this.ctx.quarantine.moveIn(this.ctx.blocksDir, blockFileName(b.id, b.file.gen), 'nameserver-order', this.ctx.clock.stampNow());
      await this.ctx.index.dropBlock(blockId);
      this.blocks.delete(blockId);
    });
    this.ctx.log?.warn({ block: blockId, why }, 'block set aside in quarantine/ on name server order');
    this.updateGauges();
  }

  /** What quarantine/ holds (status, metrics, heartbeats). */
  quarantineStats(): { files: number; bytes: number } {
    return this.ctx.quarantine.stats();
  }

  /** Removes quarantined files past --quarantine-keep-hours, by the cluster clock. */
  async expireQuarantine(): Promise<number> {
    try {
      return await this.ctx.quarantine.expire(this.quarantineKeepMs, this.ctx.clock.expiryNow());
    } catch (err) {
      this.ctx.log?.error({ err }, 'could not expire quarantined files');
      return 0;
    }
  }

  async compact(blockId: number): Promise<CompactResult> {
    const r = await compactBlock(this.block(blockId), this.ctx);
    this.updateGauges();
    return r;
  }

  async scrub(blockId: number): Promise<ScrubResult> {
    return scrubBlock(this.block(blockId), this.ctx);
  }

  async keys(blockId: number): Promise<BlockKeyState[]> {
    return listBlockKeys(this.block(blockId), this.ctx);
  }

  /** Re-indexes whatever a pull appended past the watermark. */
  async reindex(b: Block): Promise<void> {
    await recoverTail(b, this.ctx);
    b.maxKey = undefined;
    this.updateGauges();
  }

  /**
   * Reports of the blocks held. `completeOnly` leaves out copies still being pulled: the name
   * server rebuilds its block map from heartbeats and must never count a partial copy.
   * (Heartbeats keep theirs by change: report-ledger.ts.)
   */
  reports(opts: { completeOnly?: boolean } = {}): BlockReport[] {
    return [...this.blocks.values()]
      .filter((b) => (opts.completeOnly ? heldWhole(b) : !b.deleted))
      .sort((a, b) => a.id - b.id)
      .map((b) => b.report());
  }

  usedBytes(): number {
    let n = 0;
    for (const b of this.blocks.values()) n += b.meta.end;
    return n;
  }

  /**
   * Refreshes the storage gauges. Walks every block, so it runs on block-level changes, once
   * per heartbeat and before each /metrics scrape, never per write.
   */
  updateGauges(): void {
    const m = this.ctx.metrics;
    if (!m) return;
    m.bytesStored.set(this.usedBytes());
    let sealed = 0;
    let writable = 0;
    let readonly = 0;
    for (const b of this.blocks.values()) {
      if (b.sealed) sealed++;
      else if (b.writeRefusal()) readonly++;
      else writable++;
    }
    m.blocks.set({ state: 'sealed' }, sealed);
    m.blocks.set({ state: 'writable' }, writable);
    m.blocks.set({ state: 'readonly' }, readonly);
  }

  private assertOpen(): void {
    if (this.closed) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'data server is shutting down');
  }

  /** Lets queued appends finish, then closes files and the index. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.quarantineTimer) clearInterval(this.quarantineTimer);
    for (const b of this.blocks.values()) {
      await b.writer.idle();
      await b.lock.run(async () => {
        b.file.retire();
      });
    }
    await this.ctx.index.close();
  }
}
