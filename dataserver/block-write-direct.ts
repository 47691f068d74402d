// A group commit's bytes written around the page cache. Records are appended back to back,
// so a commit starts and ends inside a page; the whole 4 KiB pages in between go to the
// block file through an O_DIRECT descriptor from an aligned staging buffer, and the partial
// pages at either end through the ordinary descriptor. Each page of a block file is thus
// only ever written one way (a direct write covers pages past the old end of file, never
// one a buffered write touched), which keeps the page cache coherent with what is on disk
// without relying on the kernel's invalidation of cached pages that a concurrent reader
// could still hold. Why: filling fresh page-cache pages was the largest single cost of a
// replicated write on the machines we measured (dataserver/README.md, "Direct appends").
import { write, writevSync } from 'node:fs';
import type { AlignedStages } from './aligned-stage.ts';
import type { BlockFile } from './block.ts';
import type { Logger } from '../src/base/log.ts';
import { writevAll } from './file-write.ts';

const PAGE = 4096;

function writeAsync(fd: number, buf: Buffer, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, buf, offset, length, position, (err, n) => (err ? reject(err) : resolve(n))));
}

/**
 * Writes `parts` (`length` bytes in all) at `start` of the block file. Falls back to one
 * buffered vectored write when the commit holds no whole page, when no staging buffer is
 * free, or where the file system refuses O_DIRECT.
 */
export async function writeAppend(file: BlockFile, parts: Buffer[], start: number, length: number, stages: AlignedStages | undefined, log?: Logger): Promise<void> {
  const end = start + length;
  const a = Math.min(end, Math.ceil(start / PAGE) * PAGE);
  const z = Math.max(a, Math.floor(end / PAGE) * PAGE);
  const fd = stages && z > a ? file.direct() : undefined;
  const stage = fd === undefined ? undefined : stages!.take();
  if (fd === undefined || stage === undefined) return writevAll(file.fh, parts, start);
  try {
    const cursor = new PartCursor(parts);
    // The head and tail are under a page each and land in the page cache: written in place
    // rather than through the thread pool, which would cost two more hand-offs per commit.
    if (a > start) writeSyncAll(file.fh.fd, cursor.slices(a - start), start);
    for (let pos = a; pos < z; ) {
      const n = Math.min(stage.length, z - pos);
      cursor.copyTo(stage, n);
      try {
        await writeFully(fd, stage, n, pos);
      } catch (err) {
        if ((err as { code?: string }).code !== 'EINVAL') throw err;
        // The file system took O_DIRECT at open but refuses this write (alignment rules of
        // its own): finish buffered, and stop trying on this file.
        file.noDirect();
        log?.warn({ path: file.path, err }, 'the file system refused a direct write; appends to this block file are buffered from now on');
        await writevAll(file.fh, [stage.subarray(0, n), ...cursor.slices(end - pos - n)], pos);
        return;
      }
      pos += n;
    }
    if (end > z) writeSyncAll(file.fh.fd, cursor.slices(end - z), z);
  } finally {
    stages!.give(stage);
  }
}

async function writeFully(fd: number, buf: Buffer, n: number, position: number): Promise<void> {
  // A short direct write (a full disk part-way) surfaces as ENOSPC on the retry of the rest.
  for (let done = 0; done < n; ) {
    const w = await writeAsync(fd, buf, done, n - done, position + done);
    if (w <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += w;
  }
}

function writeSyncAll(fd: number, bufs: Buffer[], position: number): void {
  while (bufs.length > 0) {
    let w = writevSync(fd, bufs, position);
    if (w <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    position += w;
    while (bufs.length > 0 && w >= bufs[0]!.length) w -= bufs.shift()!.length;
    if (w > 0) bufs[0] = bufs[0]!.subarray(w);
  }
}

/** Walks a list of buffers as one byte sequence. */
class PartCursor {
  private i = 0;
  private off = 0;
  constructor(private readonly parts: Buffer[]) {}

  /** The next `n` bytes as views (no copy). */
  slices(n: number): Buffer[] {
    const out: Buffer[] = [];
    while (n > 0) {
      const p = this.parts[this.i]!;
      const take = Math.min(n, p.length - this.off);
      out.push(p.subarray(this.off, this.off + take));
      this.advance(p, take);
      n -= take;
    }
    return out;
  }

  /** Copies the next `n` bytes to the start of `dst`. */
  copyTo(dst: Buffer, n: number): void {
    let at = 0;
    while (at < n) {
      const p = this.parts[this.i]!;
      const take = Math.min(n - at, p.length - this.off);
      p.copy(dst, at, this.off, this.off + take);
      this.advance(p, take);
      at += take;
    }
  }

  private advance(p: Buffer, took: number): void {
    this.off += took;
    if (this.off === p.length) {
      this.i++;
      this.off = 0;
    }
  }
}
