// Appends with group commit: every record queued while the previous flush was busy (or in
// the same tick) goes to disk in one positioned write (whole pages with O_DIRECT:
// block-write-direct.ts) and one fdatasync, and then into
// LevelDB in one batch together with the block's new watermark. A record is acknowledged
// only after both, so an acknowledged record is durable and indexed; a crash in between
// leaves it past the watermark, where recovery finds it by scanning.
import type { FileHandle } from 'node:fs/promises';
import { UgcfsError } from '../src/base/errors.ts';
import type { Block } from './block.ts';
import { META_SEALED, metaWith, type IndexOp } from './needle-index.ts';
import type { StoreContext } from './store-context.ts';
import { writeAppend } from './block-write-direct.ts';

export interface AppendRecord {
  kind: 'put' | 'del';
  key: bigint;
  cookie: number;
  /** the encoded needle, as pieces written with one writev (no copy of the data) */
  parts: Buffer[];
  length: number;
  /** for tombstones: on-disk length of the record being deleted (block statistics) */
  deletedLength?: number;
  /** a record copied by verify --repair: lands on sealed/read-only blocks, past the size limit */
  repair?: boolean;
}

/**
 * A queued append. A class, so every one has the same shape: made by spreading the caller's
 * record (`{ ...rec, offset, resolve, reject }`) they came out with maps V8 could not share,
 * and every property access in flush went megamorphic (--log-ic: seven per record; inline-cache
 * misses were the largest item of a data server's main-thread CPU under writes).
 */
class Pending {
  readonly kind: 'put' | 'del';
  readonly key: bigint;
  readonly cookie: number;
  readonly parts: Buffer[];
  readonly length: number;
  readonly deletedLength: number | undefined;
  readonly repair: boolean;
  offset = -1;

  constructor(
    rec: AppendRecord,
    readonly resolve: (offset: number) => void,
    readonly reject: (err: unknown) => void,
  ) {
    this.kind = rec.kind;
    this.key = rec.key;
    this.cookie = rec.cookie;
    this.parts = rec.parts;
    this.length = rec.length;
    this.deletedLength = rec.deletedLength;
    this.repair = rec.repair === true;
  }
}

export class BlockWriter {
  private queue: Pending[] = [];
  private draining = false;
  // Bound once: resolving label values costs more per record than the count itself.
  private readonly counted: { put?: { inc(): void }; tombstone?: { inc(): void } };

  constructor(
    private readonly block: Block,
    private readonly ctx: StoreContext,
  ) {
    const w = ctx.metrics?.needleWrites;
    this.counted = { put: w?.labels({ kind: 'put' }), tombstone: w?.labels({ kind: 'tombstone' }) };
  }

  /** Resolves with the record's offset once it is on disk (fsynced when enabled) and indexed. */
  append(rec: AppendRecord): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.queue.push(new Pending(rec, resolve, reject));
      if (!this.draining) {
        this.draining = true;
        // setImmediate lets every append issued in this tick join the first group.
        setImmediate(() => void this.drain());
      }
    });
  }

  /** Resolves when nothing is queued or being written. */
  async idle(): Promise<void> {
    while (this.draining) await new Promise((r) => setImmediate(r));
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        await this.block.lock.run(() => this.flush(this.queue.splice(0)));
      }
    } finally {
      this.draining = false;
      if (this.queue.length > 0) {
        this.draining = true;
        setImmediate(() => void this.drain());
      }
    }
  }

  private async flush(batch: Pending[]): Promise<void> {
    const b = this.block;
    const { blockSize } = this.ctx;
    const start = b.meta.end;
    let pos = start;
    let sealedNow = false;
    const accepted: Pending[] = [];
    for (const rec of batch) {
      if (b.deleted) {
        rec.reject(new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${b.id} was deleted`));
        continue;
      }
      if (b.failed) {
        rec.reject(new UgcfsError('UGCFS_ERR_BLOCK_READONLY', `block ${b.id} had a write failure and takes no writes until restart`));
        continue;
      }
      if (rec.kind === 'put') {
        const refusal = rec.repair ? b.repairRefusal() : b.writeRefusal();
        if (refusal) {
          rec.reject(new UgcfsError('UGCFS_ERR_BLOCK_READONLY', `block ${b.id} is ${refusal}`));
          continue;
        }
        if (!rec.repair && pos + rec.length > blockSize) {
          // Seal rather than leave a block that rejects most writes: the name server sees
          // `sealed` in the next heartbeat and stops assigning to it.
          b.meta = metaWith(b.meta, { flags: b.meta.flags | META_SEALED });
          sealedNow = true;
          rec.reject(new UgcfsError('UGCFS_ERR_BLOCK_READONLY', `block ${b.id} is full and now sealed`));
          continue;
        }
      }
      // Tombstones are accepted on sealed blocks: a delete must always be possible.
      rec.offset = pos;
      pos += rec.length;
      accepted.push(rec);
    }
    if (accepted.length === 0) {
      if (sealedNow) await this.ctx.index.apply([this.ctx.index.metaOp(b.id, b.meta)]).catch(() => {});
      return;
    }

    const file = b.file;
    try {
      await writeAppend(file, accepted.flatMap((r) => r.parts), start, pos - start, this.ctx.directStages, this.ctx.log);
      this.ctx.crashPoint('append-written');
      if (this.ctx.fsync) {
        await file.fh.datasync();
        this.ctx.metrics?.fsyncs.inc();
        this.ctx.metrics?.groupCommitSize.observe(accepted.length);
      }
    } catch (err) {
      await this.undo(file.fh, start);
      const e = ioError(err, `append to block ${b.id}`);
      for (const rec of accepted) rec.reject(e);
      return;
    }

    const meta = metaWith(b.meta, { end: pos });
    const ops: IndexOp[] = [];
    for (const rec of accepted) {
      if (rec.kind === 'put') {
        ops.push(this.ctx.index.putOp(b.id, rec.key, { offset: rec.offset, length: rec.length, cookie: rec.cookie, flags: 0 }));
        meta.liveCount++;
        meta.liveBytes += rec.length;
      } else {
        ops.push(this.ctx.index.delOp(b.id, rec.key));
        const gone = rec.deletedLength ?? 0;
        if (gone > 0) {
          meta.liveCount = Math.max(0, meta.liveCount - 1);
          meta.liveBytes = Math.max(0, meta.liveBytes - gone);
        }
        meta.deletedBytes += gone + rec.length;
        b.deletedDuringCompaction?.add(rec.key);
      }
    }
    ops.push(this.ctx.index.metaOp(b.id, meta));
    try {
      await this.ctx.index.apply(ops);
    } catch (err) {
      await this.undo(file.fh, start);
      const e = ioError(err, `index write for block ${b.id}`);
      for (const rec of accepted) rec.reject(e);
      return;
    }
    b.meta = meta;
    for (const rec of accepted) {
      (rec.kind === 'put' ? this.counted.put : this.counted.tombstone)?.inc();
      rec.resolve(rec.offset);
    }
  }

  /** Cuts a failed append off again so nothing unacknowledged stays in the file. */
  private async undo(fh: FileHandle, to: number): Promise<void> {
    try {
      await fh.truncate(to);
    } catch (err) {
      this.block.failed = true;
      this.ctx.log?.error({ err, block: this.block.id }, 'could not cut a failed append; block stops taking writes');
    }
  }
}

/** Disk full is a distinct, stable answer; everything else is internal. */
export function ioError(err: unknown, what: string): UgcfsError {
  if (err instanceof UgcfsError) return err;
  const code = (err as { code?: string }).code;
  // LevelDB reports a full disk only in its message, possibly on the wrapped cause.
  const text = `${(err as Error).message ?? ''} ${((err as { cause?: Error }).cause?.message) ?? ''}`;
  if (code === 'ENOSPC' || code === 'EDQUOT' || /No space left/i.test(text)) return new UgcfsError('UGCFS_ERR_NO_SPACE', `disk full during ${what}`, { cause: err });
  return new UgcfsError('UGCFS_ERR_INTERNAL', `${what} failed: ${code ?? (err as Error).message}`, { cause: err });
}
