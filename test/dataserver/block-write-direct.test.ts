// Direct appends (dataserver/block-write-direct.ts) against real files: whatever the commit
// sizes and where they start, the file holds exactly the bytes appended, reads through the
// ordinary descriptor see each commit as soon as it is written, staging buffers come back,
// and a file system's refusal falls back to buffered writes without losing a byte.
import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AlignedStages, STAGE_BYTES } from '../../dataserver/aligned-stage.ts';
import { BlockFile } from '../../dataserver/block.ts';
import { writeAppend } from '../../dataserver/block-write-direct.ts';
import { BlockStore } from '../../dataserver/block-store.ts';
import { tempDir } from '../helpers/proc.ts';
import { recordData } from './record-data.ts';

const tmp = tempDir('ugcfs-direct-');
afterAll(() => tmp.cleanup());
let seq = 0;

/** Counts what is taken and given back, so a test can see the direct path was used. */
class CountingStages extends AlignedStages {
  taken = 0;
  given = 0;
  override take(): Buffer | undefined {
    const b = this.misaligned ? Buffer.alloc(STAGE_BYTES + 1).subarray(1) : super.take();
    if (b) this.taken++;
    return b;
  }
  override give(b: Buffer): void {
    this.given++;
    if (!this.misaligned) super.give(b);
  }
  constructor(
    max?: number,
    private readonly misaligned = false,
  ) {
    super(max);
  }
}

/** Deterministic bytes, split into parts at uneven places as needles are (header, data, footer). */
function commit(n: number, length: number): Buffer[] {
  const all = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) all[i] = (i * 31 + n * 7 + (i >> 12)) & 0xff;
  const cuts = [0, Math.min(length, 37), Math.max(Math.min(length, 37), Math.floor(length / 2)), length];
  return cuts.slice(1).map((c, i) => all.subarray(cuts[i], c));
}

async function appendAll(file: BlockFile, lengths: number[], stages: AlignedStages): Promise<Buffer> {
  const written: Buffer[] = [];
  let pos = 0;
  for (const [i, len] of lengths.entries()) {
    const parts = commit(i, len);
    await writeAppend(file, parts, pos, len, stages);
    pos += len;
    written.push(...parts);
    // Read back through the ordinary descriptor, as the read path does, right after each commit.
    const back = Buffer.alloc(pos);
    const { bytesRead } = await file.fh.read(back, 0, pos, 0);
    expect(bytesRead).toBe(pos);
    expect(Buffer.compare(back, Buffer.concat(written)), `after commit ${i} (${len} bytes)`).toBe(0);
  }
  return Buffer.concat(written);
}

/** Does this file system refuse a misaligned O_DIRECT write (ext4, xfs do; tmpfs does not)? */
function refusesMisaligned(dir: string): boolean {
  const p = join(dir, 'probe');
  writeSync(openSync(p, 'w'), Buffer.alloc(0));
  let fd: number;
  try {
    fd = openSync(p, constants.O_WRONLY | constants.O_DIRECT);
  } catch {
    return false;
  }
  try {
    writeSync(fd, Buffer.alloc(4097), 1, 4096, 0);
    return false;
  } catch (err) {
    return (err as { code?: string }).code === 'EINVAL';
  } finally {
    closeSync(fd);
  }
}

// Commits that start and end inside pages, on page boundaries, within one page, and across
// more than one staging buffer.
const LENGTHS = [100, 4096 - 100, 8192, 20_520, 3, 4093, 50_000, STAGE_BYTES * 2 + 12_345, 1, 20_480, 4096 * 3];

function commitsWithWholePages(lengths: number[]): number {
  let pos = 0;
  let n = 0;
  for (const len of lengths) {
    if (Math.floor((pos + len) / 4096) > Math.ceil(pos / 4096)) n++;
    pos += len;
  }
  return n;
}

describe('direct appends', () => {
  it('write exactly the appended bytes whatever the alignment, readable at once, and give every stage back', async () => {
    const file = await BlockFile.open(tmp.dir, ++seq, 0, true);
    const stages = new CountingStages();
    try {
      const expected = await appendAll(file, LENGTHS, stages);
      expect(Buffer.compare(readFileSync(file.path), expected)).toBe(0);
      // The direct path was taken for every commit holding a whole page, and nothing leaked.
      expect(file.direct()).toBeTypeOf('number');
      expect(stages.taken).toBe(commitsWithWholePages(LENGTHS));
      expect(stages.given).toBe(stages.taken);
    } finally {
      file.retire();
    }
  });

  it('go buffered when every staging buffer is in use', async () => {
    const file = await BlockFile.open(tmp.dir, ++seq, 0, true);
    const stages = new CountingStages(1);
    const held = stages.take()!;
    try {
      const expected = await appendAll(file, [8192, 30_000], stages);
      expect(Buffer.compare(readFileSync(file.path), expected)).toBe(0);
      expect(stages.taken).toBe(1); // only the one held above
    } finally {
      stages.give(held);
      file.retire();
    }
  });

  it('finish buffered, and stop trying, when the file system refuses a direct write', async () => {
    const file = await BlockFile.open(tmp.dir, ++seq, 0, true);
    const stages = new CountingStages(8, true);
    const refuses = refusesMisaligned(tmp.dir);
    try {
      const expected = await appendAll(file, [100, 50_000, 20_000, 9000], stages);
      expect(Buffer.compare(readFileSync(file.path), expected)).toBe(0);
      if (refuses) {
        expect(file.direct()).toBeUndefined();
        expect(stages.taken).toBe(1); // the refused one; later commits did not try
      }
      expect(stages.given).toBe(stages.taken);
    } finally {
      file.retire();
    }
  });

  it('leave block files byte for byte as buffered appends do', async () => {
    const files: Buffer[] = [];
    for (const directWrites of [true, false]) {
      const dir = join(tmp.dir, `store-${directWrites}`);
      const s = await BlockStore.open({ dir, blockSize: 8 << 20, directWrites });
      await s.createBlock(1);
      // A first put alone: until the block knows its highest key, puts look it up in LevelDB
      // and may queue in either order; after it, they queue in the order they are issued.
      await s.put(1, { key: 1n, cookie: 1, uploadTime: 1_700_000_000_000, mime: 'image/jpeg', owner: 'o' }, recordData(1n, 5000));
      // Sizes around page multiples, issued together so group commits of several form.
      const sizes = [1, 4000, 4096, 20_000, 70_000, 12, 8191, 300_000];
      for (let round = 1; round < 4; round++) {
        await Promise.all(sizes.map((n, i) => s.put(1, { key: BigInt(round * 100 + i + 1), cookie: i + 1, uploadTime: 1_700_000_000_000, mime: 'image/jpeg', owner: 'o' }, recordData(BigInt(round * 100 + i + 1), n))));
      }
      for (let i = 0; i < sizes.length; i++) {
        const n = await s.read(1, BigInt(300 + i + 1), i + 1);
        expect(Buffer.compare(n.data, recordData(BigInt(300 + i + 1), sizes[i]!))).toBe(0);
      }
      await s.close();
      files.push(readFileSync(join(dir, 'blocks', '1.0.blk')));
    }
    expect(files[0]!.length).toBeGreaterThan(500_000);
    expect(Buffer.compare(files[0]!, files[1]!)).toBe(0);
  });
});
