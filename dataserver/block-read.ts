// The read path: one index lookup (usually from the cache) and one positioned read of
// exactly the record's bytes. The counters ugcfs_index_lookups_total and
// ugcfs_block_preads_total move by one each per read, which is how tests prove it.
import { read, readSync } from 'node:fs';
import { Readable } from 'node:stream';
import { UgcfsError } from '../src/base/errors.ts';
import type { Block, BlockFile } from './block.ts';
import { decodeNeedle, decodeNeedleForClientCheck, isTombstone, type Needle } from './needle.ts';
import type { IndexEntry } from './needle-index.ts';
import type { StoreContext } from './store-context.ts';
import type { SyncReadGate } from './sync-read-gate.ts';

const MAX_SWITCH_RETRIES = 5;

/**
 * A cache hit outside a compaction's switch is answered with one promise around one pread,
 * everything else synchronous: the promise and microtask layers of an async lookup were a
 * measurable share of a read's CPU. Anything else takes the looked-up path.
 */
export function readNeedle(b: Block, ctx: StoreContext, key: bigint, cookie: number, opts: ReadOptions = SERVER_CHECKED): Promise<Needle> {
  if (!b.switching) {
    const e = ctx.index.cached(b.id, key);
    if (e) return readIndexed(b, b.file, ctx, e, key, cookie, opts);
  }
  return readLookedUp(b, ctx, key, cookie, opts);
}

export interface ReadOptions {
  /** where the record's buffer comes from: a fresh one, or the read route's pool (buffer-pool.ts) */
  take: (length: number) => Buffer;
  /**
   * The reader checks the data's CRC32-C against the answer's `dataCrc` (needle.ts
   * decodeNeedleForClientCheck): no pass over the data here. Only for readers that do check.
   */
  clientChecks: boolean;
}

/** Every byte checked here before it is served, in a fresh buffer. */
export const SERVER_CHECKED: ReadOptions = Object.freeze({ take: (length: number) => Buffer.allocUnsafe(length), clientChecks: false });

async function readLookedUp(b: Block, ctx: StoreContext, key: bigint, cookie: number, opts: ReadOptions): Promise<Needle> {
  for (let attempt = 0; ; attempt++) {
    if (b.switching) await b.switching;
    const file = b.file;
    // Pinned across the lookup too: after the last retry the read still goes to this file.
    file.pin();
    try {
      const e = ctx.index.cached(b.id, key) ?? (await ctx.index.get(b.id, key));
      // A compaction switched generations while we looked up: the entry may belong to the
      // other file, so look up again against the new one.
      if ((b.switching || b.file !== file) && attempt < MAX_SWITCH_RETRIES) continue;
      return readIndexed(b, file, ctx, e, key, cookie, opts);
    } finally {
      file.unpin();
    }
  }
}

/** The one positioned read of an indexed record; the file stays pinned while it runs. */
function readIndexed(b: Block, file: BlockFile, ctx: StoreContext, e: IndexEntry | undefined, key: bigint, cookie: number, opts: ReadOptions): Promise<Needle> {
  // A wrong cookie is answered exactly like a missing file, so ids cannot be probed.
  if (!e || e.cookie !== cookie) return Promise.reject(new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file'));
  const gate = ctx.syncReads;
  if (gate !== undefined) {
    const started = performance.now();
    if (gate.allows(e.length, started)) return readInPlace(b, file, ctx, e, key, cookie, opts, gate, started);
  }
  return new Promise<Needle>((resolve, reject) => {
    const buf = opts.take(e.length);
    file.pin();
    try {
      read(file.fh.fd, buf, 0, e.length, e.offset, (err, bytesRead) => {
        file.unpin();
        if (err) return reject(err);
        ctx.metrics?.blockPreads.inc();
        try {
          resolve(verified(b, ctx, e, key, cookie, buf, bytesRead, opts.clientChecks));
        } catch (x) {
          reject(x);
        }
      });
    } catch (x) {
      file.unpin();
      reject(x);
    }
  });
}

/**
 * The same read done synchronously (sync-read-gate.ts): no pin, since nothing can close the
 * file while the loop is held, and the gate times it to catch a read the disk had to serve.
 */
function readInPlace(b: Block, file: BlockFile, ctx: StoreContext, e: IndexEntry, key: bigint, cookie: number, opts: ReadOptions, gate: SyncReadGate, started: number): Promise<Needle> {
  try {
    const buf = opts.take(e.length);
    const bytesRead = readSync(file.fh.fd, buf, 0, e.length, e.offset);
    gate.took(e.length, started, performance.now());
    ctx.metrics?.blockPreads.inc();
    ctx.metrics?.syncPreads.inc();
    return Promise.resolve(verified(b, ctx, e, key, cookie, buf, bytesRead, opts.clientChecks));
  } catch (x) {
    return Promise.reject(x);
  }
}

/**
 * The record as read, served only when whole, CRC-clean (here, or by the reader when it
 * checks) and the one the index named.
 */
function verified(b: Block, ctx: StoreContext, e: IndexEntry, key: bigint, cookie: number, buf: Buffer, bytesRead: number, clientChecks: boolean): Needle {
  const where = () => `block ${b.id} offset ${e.offset}`;
  if (bytesRead !== e.length) throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where()} is cut short`);
  const n = clientChecks ? decodeNeedleForClientCheck(buf) : decodeNeedle(buf);
  if (n === 'crc') {
    ctx.metrics?.checksumFailures.inc();
    ctx.log?.error({ block: b.id, offset: e.offset, key: key.toString() }, 'record failed its CRC32-C check');
    throw new UgcfsError('UGCFS_ERR_CHECKSUM', `record at ${where()} failed its CRC32-C check`);
  }
  if (typeof n === 'string') throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where()} is damaged (${n})`);
  if (n.key !== key || n.cookie !== cookie || isTombstone(n.flags)) {
    throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where()} is not the indexed one`);
  }
  ctx.metrics?.needleReads.inc();
  return n;
}

/**
 * A byte range of a pinned block file as a stream, for block copies (GET /blocks/:id/data).
 * Not fs.createReadStream: destroying one of those closes its descriptor whatever
 * autoClose says, and fastify destroys the stream when the reader hangs up, which would
 * close the descriptor every reader of the block shares. This one never closes the
 * descriptor; it calls `done` once, when it ends or is destroyed and no read is in flight.
 */
export class BlockRangeStream extends Readable {
  private pos: number;
  private reading = false;
  private finished = false;
  private released = false;

  constructor(
    private readonly fd: number,
    from: number,
    private readonly end: number,
    private readonly done: () => void,
  ) {
    super({ highWaterMark: 256 * 1024 });
    this.pos = from;
  }

  override _read(size: number): void {
    const len = Math.min(Math.max(size, 64 * 1024), this.end - this.pos);
    if (len <= 0) {
      this.push(null);
      return;
    }
    const buf = Buffer.allocUnsafe(len);
    this.reading = true;
    read(this.fd, buf, 0, len, this.pos, (err, n) => {
      this.reading = false;
      if (this.finished) return this.release();
      if (err) return this.destroy(err);
      if (n === 0) return this.destroy(new UgcfsError('UGCFS_ERR_CORRUPT', `block file ends at ${this.pos}, before its indexed end ${this.end}`));
      this.pos += n;
      this.push(n === len ? buf : buf.subarray(0, n));
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.finished = true;
    if (!this.reading) this.release();
    cb(err);
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    this.done();
  }
}
