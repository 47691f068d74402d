// Sequential scan of a block file's records, read in large chunks. A problem is reported and
// the scan resynchronises on the next aligned magic, so one bad record does not hide the rest
// of the block from scrub or recovery.
import type { FileHandle } from 'node:fs/promises';
import { ALIGN, HEADER_SIZE, decodeHeader, decodeNeedle, type Needle, type NeedleHeader, type NeedleProblem } from './needle.ts';

const CHUNK = 1 << 20;

export type ScanItem =
  | { offset: number; length: number; needle: Needle; problem?: undefined }
  | { offset: number; length: number; needle?: undefined; problem: NeedleProblem; header?: NeedleHeader };

/**
 * Yields every record between `from` and `to`. Needle data is a view valid until the next item.
 * `distrustBadRecords`: after a record that fails its check, look for the next record from the
 * following aligned offset rather than trusting the failed record's own length (recovery does,
 * so that a damaged length field cannot hide whole records behind it).
 */
export async function* scanBlock(fh: FileHandle, from: number, to: number, opts: { distrustBadRecords?: boolean } = {}): AsyncGenerator<ScanItem> {
  let buf = Buffer.alloc(0);
  let bufStart = from;

  const window = async (pos: number, n: number): Promise<number> => {
    if (pos >= bufStart && pos + n <= bufStart + buf.length) return pos - bufStart;
    const size = Math.min(Math.max(CHUNK, n), to - pos);
    buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const { bytesRead } = await fh.read(buf, got, size - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    buf = buf.subarray(0, got);
    bufStart = pos;
    return 0;
  };

  let pos = from;
  while (pos < to) {
    if (to - pos < HEADER_SIZE) {
      yield { offset: pos, length: to - pos, problem: 'truncated' };
      return;
    }
    let rel = await window(pos, HEADER_SIZE);
    const header = decodeHeader(buf, rel);
    if (!header) {
      const next = await resync(pos + ALIGN);
      yield { offset: pos, length: next - pos, problem: 'magic' };
      pos = next;
      continue;
    }
    if (header.length > to - pos) {
      const next = await resync(pos + ALIGN);
      yield { offset: pos, length: next - pos, problem: 'truncated', header };
      pos = next;
      continue;
    }
    rel = await window(pos, header.length);
    const n = decodeNeedle(buf.subarray(rel, rel + header.length));
    if (typeof n !== 'string') {
      yield { offset: pos, length: header.length, needle: n };
      pos += header.length;
    } else if (opts.distrustBadRecords) {
      const next = await resync(pos + ALIGN);
      yield { offset: pos, length: next - pos, problem: n, header };
      pos = next;
    } else {
      yield { offset: pos, length: header.length, problem: n, header };
      pos += header.length;
    }
  }

  // Next aligned offset that holds a plausible header, or `to`.
  async function resync(p: number): Promise<number> {
    for (; p + HEADER_SIZE <= to; p += ALIGN) {
      const rel = await window(p, HEADER_SIZE);
      const h = decodeHeader(buf, rel);
      if (h && h.length <= to - p) return p;
    }
    return to;
  }
}
