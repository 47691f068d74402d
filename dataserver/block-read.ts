// The read path: one index lookup (usually from the cache) and one positioned read of
// exactly the record's bytes. The counters ugcfs_index_lookups_total and
// ugcfs_block_preads_total move by one each per read, which is how tests prove it.
import { read } from 'node:fs';
import { UgcfsError } from '../src/errors.ts';
import type { Block } from './block.ts';
import { decodeNeedle, isTombstone, type Needle } from './needle.ts';
import type { StoreContext } from './store-context.ts';

const MAX_SWITCH_RETRIES = 5;

export async function readNeedle(b: Block, ctx: StoreContext, key: bigint, cookie: number): Promise<Needle> {
  for (let attempt = 0; ; attempt++) {
    if (b.switching) await b.switching;
    const file = b.file;
    file.pin();
    try {
      // The cache answers synchronously; only a miss pays for an await on LevelDB.
      const e = ctx.index.cached(b.id, key) ?? (await ctx.index.get(b.id, key));
      // A compaction switched generations while we looked up: the entry may belong to the
      // other file, so look up again against the new one.
      if ((b.switching || b.file !== file) && attempt < MAX_SWITCH_RETRIES) continue;
      // A wrong cookie is answered exactly like a missing file, so ids cannot be probed.
      if (!e || e.cookie !== cookie) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      const buf = Buffer.allocUnsafe(e.length);
      const bytesRead = await pread(file.fh.fd, buf, e.offset);
      ctx.metrics?.blockPreads.inc();
      const where = `block ${b.id} offset ${e.offset}`;
      if (bytesRead !== e.length) throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where} is cut short`);
      const n = decodeNeedle(buf);
      if (n === 'crc') {
        ctx.metrics?.checksumFailures.inc();
        ctx.log?.error({ block: b.id, offset: e.offset, key: key.toString() }, 'record failed its CRC32-C check');
        throw new UgcfsError('UGCFS_ERR_CHECKSUM', `record at ${where} failed its CRC32-C check`);
      }
      if (typeof n === 'string') throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where} is damaged (${n})`);
      if (n.key !== key || n.cookie !== cookie || isTombstone(n.flags)) {
        throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where} is not the indexed one`);
      }
      ctx.metrics?.needleReads.inc();
      return n;
    } finally {
      file.unpin();
    }
  }
}

/**
 * fs.read on the raw descriptor: measurably cheaper per call than FileHandle.read, which
 * matters on the hot path (the BlockFile pin keeps the descriptor open meanwhile).
 */
function pread(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, 0, buf.length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}
