// One block: an append-only file `<id>.<gen>.blk` plus its in-memory state. The generation
// in the file name changes only through compaction; LevelDB's block meta says which
// generation is current, so any other generation on disk is a leftover of an interrupted
// compaction and is removed on open.
import { close, constants, openSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlockMeta } from './needle-index.ts';
import { META_INCOMPLETE, META_READONLY, META_SEALED } from './needle-index.ts';
import type { BlockReport } from '../src/wire/protocol.ts';
import type { BlockWriter } from './block-write.ts';

const FILE_NAME = /^(\d{1,10})\.(\d{1,10})\.blk$/;

export function blockFileName(id: number, gen: number): string {
  return `${id}.${gen}.blk`;
}

export function parseBlockFileName(name: string): { id: number; gen: number } | undefined {
  const m = FILE_NAME.exec(name);
  if (!m) return undefined;
  const id = Number(m[1]);
  const gen = Number(m[2]);
  if (id > 0xffffffff || gen > 0xffffffff) return undefined;
  return { id, gen };
}

/** An open generation of a block file. Readers pin it so compaction closes it only when idle. */
export class BlockFile {
  private readers = 0;
  private retired = false;
  /** a second descriptor opened with O_DIRECT for appends; null once the file system refused it */
  private directFd: number | null | undefined;
  constructor(
    readonly gen: number,
    readonly path: string,
    readonly fh: FileHandle,
  ) {}

  static async open(dir: string, id: number, gen: number, create: boolean): Promise<BlockFile> {
    const path = join(dir, blockFileName(id, gen));
    const fh = await open(path, create ? 'w+' : 'r+');
    return new BlockFile(gen, path, fh);
  }

  /**
   * The O_DIRECT descriptor for appends, opened on first use; undefined where the file system
   * refuses O_DIRECT (tmpfs on older kernels, some FUSE and network file systems), and after
   * `noDirect()`.
   */
  direct(): number | undefined {
    if (this.directFd === undefined && !this.retired) {
      try {
        this.directFd = openSync(this.path, constants.O_WRONLY | constants.O_DIRECT);
      } catch {
        this.directFd = null;
      }
    }
    return this.directFd ?? undefined;
  }

  /** Stops direct appends to this file (a direct write was refused); buffered writes go on. */
  noDirect(): void {
    this.closeDirect();
  }

  pin(): void {
    this.readers++;
  }

  unpin(): void {
    this.readers--;
    if (this.retired && this.readers === 0) this.close();
  }

  /** Closes the handle once the last reader is done. */
  retire(): void {
    this.retired = true;
    if (this.readers === 0) this.close();
  }

  private close(): void {
    this.closeDirect();
    void this.fh.close().catch(() => {});
  }

  private closeDirect(): void {
    if (typeof this.directFd === 'number') close(this.directFd, () => {});
    this.directFd = null;
  }
}

/** A promise-chain mutex: appends, compaction's switch, pulls and block deletion exclude each other. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();
  async run<T>(fn: () => Promise<T>): Promise<T> {
    const prev = this.tail;
    let release!: () => void;
    this.tail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

export class Block {
  /** committed state: what the index covers */
  meta: BlockMeta;
  file: BlockFile;
  readonly lock = new Mutex();
  compacting = false;
  pulling = false;
  deleted = false;
  /** a write failed in a way that left the file in doubt; no more appends until restart */
  failed = false;
  /**
   * Highest key ever offered to this block (undefined until first needed). Keys come from
   * name-server leases and mostly increase, so a put above it cannot be a duplicate and
   * skips the LevelDB lookup that would otherwise cost every write a miss.
   */
  maxKey: bigint | undefined;
  /** keys with an append or tombstone queued but not yet committed */
  readonly pendingKeys = new Set<bigint>();
  /** keys deleted while a compaction copies, so the new generation does not resurrect them */
  deletedDuringCompaction: Set<bigint> | undefined;
  /** set while compaction switches generations; readers wait for it and retry */
  switching: Promise<void> | undefined;
  /** the group-commit appender; set by the store right after construction */
  writer!: BlockWriter;

  constructor(
    readonly id: number,
    readonly dir: string,
    file: BlockFile,
    meta: BlockMeta,
  ) {
    this.file = file;
    this.meta = meta;
  }

  get sealed(): boolean {
    return (this.meta.flags & META_SEALED) !== 0;
  }

  get adminReadonly(): boolean {
    return (this.meta.flags & META_READONLY) !== 0;
  }

  get incomplete(): boolean {
    return (this.meta.flags & META_INCOMPLETE) !== 0;
  }

  /** Why the block refuses new records, or undefined when it takes them. */
  writeRefusal(): string | undefined {
    if (this.deleted) return 'deleted';
    if (this.failed) return 'failed';
    if (this.pulling) return 'being copied from a peer';
    if (this.compacting) return 'being compacted';
    if (this.sealed) return 'sealed';
    if (this.adminReadonly) return 'read-only';
    return undefined;
  }

  /**
   * Why the block refuses a record that verify --repair copies from another replica. Sealed
   * and read-only blocks take it: the record belongs to the block, the copy just missed it.
   */
  repairRefusal(): string | undefined {
    const r = this.writeRefusal();
    return r === 'sealed' || r === 'read-only' ? undefined : r;
  }

  report(): BlockReport {
    return {
      id: this.id,
      size: this.meta.end,
      liveCount: this.meta.liveCount,
      liveBytes: this.meta.liveBytes,
      deletedBytes: this.meta.deletedBytes,
      sealed: this.sealed,
      readonly: this.writeRefusal() !== undefined,
      gen: this.meta.gen,
    };
  }
}
