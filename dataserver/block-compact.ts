// Compaction: rewrite a block into generation gen+1 without deleted records, while reads go
// on against the old generation. Tombstones are kept (40 bytes each, not counted as
// reclaimable) for --tombstone-keep-hours after their delete: they are how verify tells a
// copy that deleted a key from one that never had it, so a half-applied delete is settled
// by deleting, never by copying the file back. Crash-safe at every step because LevelDB's block meta
// names the current generation and changes in the same atomic batch as the entries:
//   copied      new file written and fsynced      -> on open: meta says old gen, new file quarantined
//   tombstoned  deletes during the copy appended  -> same
//   switched    ONE synced batch: entries + gen   -> on open: meta says new gen, old file quarantined
//   unlinked    old file gone                     -> done
// The switch is synced before the unlink: an index that forgot the switch after a power cut
// would name a generation that no longer exists.
// (Each name is also a UGCFS_TEST_CRASH_AT step, prefixed `compact-`.)
import { unlink } from 'node:fs/promises';
import { UgcfsError } from '../src/base/errors.ts';
import type { CompactResult } from '../src/wire/protocol.ts';
import { BlockFile, type Block } from './block.ts';
import { syncDir } from '../src/base/durable-fs.ts';
import { ioError } from './block-write.ts';
import { writeAll } from './file-write.ts';
import { scanBlock } from './block-scan.ts';
import { encodeTombstone, decodeHeader, isTombstone } from './needle.ts';
import type { BlockMeta, IndexEntry, IndexOp } from './needle-index.ts';
import type { StoreContext } from './store-context.ts';

const OUT_CHUNK = 4 << 20;

export async function compactBlock(b: Block, ctx: StoreContext): Promise<CompactResult> {
  if (b.compacting) throw new UgcfsError('UGCFS_ERR_CONFLICT', `block ${b.id} is already being compacted`);
  if (b.pulling) throw new UgcfsError('UGCFS_ERR_CONFLICT', `block ${b.id} is being copied from a peer`);
  b.compacting = true;
  b.deletedDuringCompaction = new Set();
  const oldFile = b.file;
  const beforeBytes = b.meta.end;
  let newFile: BlockFile | undefined;
  let switched = false;
  oldFile.pin();
  try {
    // Appends already queued finish first; later ones are refused while `compacting`.
    await b.lock.run(async () => {});

    const live: Array<{ key: bigint; entry: IndexEntry }> = [];
    for await (const it of ctx.index.entries(b.id)) live.push(it);
    live.sort((x, y) => x.entry.offset - y.entry.offset);
    const snapshotEnd = b.meta.end;

    const newGen = b.meta.gen + 1;
    newFile = await BlockFile.open(ctx.blocksDir, b.id, newGen, true);
    const placed = new Map<bigint, IndexEntry>();
    let pos = 0;
    let out: Buffer[] = [];
    let outBytes = 0;
    const flushOut = async () => {
      if (outBytes === 0) return;
      await writeAll(newFile!.fh, Buffer.concat(out, outBytes), pos - outBytes);
      out = [];
      outBytes = 0;
    };
    for (const { key, entry } of live) {
      const rec = Buffer.allocUnsafe(entry.length);
      const { bytesRead } = await oldFile.fh.read(rec, 0, entry.length, entry.offset);
      const h = bytesRead === entry.length ? decodeHeader(rec) : undefined;
      if (!h || h.key !== key) {
        // Copy what we can verify is the indexed record; a damaged one stays findable by scrub
        // on the old copy until repair, so stop rather than drop or propagate it.
        throw new UgcfsError('UGCFS_ERR_CORRUPT', `block ${b.id}: record at ${entry.offset} is damaged; scrub and repair before compacting`);
      }
      out.push(rec);
      outBytes += rec.length;
      placed.set(key, { ...entry, offset: pos });
      pos += rec.length;
      if (outBytes >= OUT_CHUNK) await flushOut();
    }
    const liveKeys = new Set(live.map((x) => x.key));
    const tombstones = new Map<bigint, Buffer>();
    // Past the keep time every copy has long had its chance to learn of the delete (replay
    // of missed deletes, verify --repair), so the tombstone has done its work.
    // Both clocks must agree (cluster-clock.ts); before the name server answered, none expire.
    const now = ctx.clock.expiryNow();
    const keepAfter = ctx.tombstoneKeepMs > 0 && now !== undefined ? now - ctx.tombstoneKeepMs : -Infinity;
    for await (const item of scanBlock(oldFile.fh, 0, snapshotEnd)) {
      // A damaged record that is not indexed is dropped, as it always was; only whole
      // tombstones of keys that are not live carry over.
      if (item.problem || !isTombstone(item.needle.flags) || liveKeys.has(item.needle.key)) continue;
      if (item.needle.uploadTime < keepAfter) continue;
      tombstones.set(item.needle.key, encodeTombstone(item.needle.key, item.needle.cookie, item.needle.uploadTime));
    }
    for (const t of tombstones.values()) {
      out.push(t);
      outBytes += t.length;
      pos += t.length;
      if (outBytes >= OUT_CHUNK) await flushOut();
    }
    await flushOut();
    await newFile.fh.datasync();
    await syncDir(ctx.blocksDir);
    ctx.crashPoint('compact-copied');

    const result = await b.lock.run(async () => {
      if (b.deleted) throw new UgcfsError('UGCFS_ERR_BLOCK_NOT_FOUND', `block ${b.id} was deleted during compaction`);
      // Deletes that landed during the copy were applied to the old file and the index; the
      // new file still holds their records, so give it their tombstones too, or a later scan
      // (pull, recovery) would bring them back.
      let deletedBytes = 0;
      const tombs: Buffer[] = [];
      for (const key of b.deletedDuringCompaction ?? []) {
        const e = placed.get(key);
        if (!e) continue;
        placed.delete(key);
        const t = encodeTombstone(key, e.cookie, ctx.clock.stampNow());
        tombs.push(t);
        deletedBytes += e.length + t.length;
      }
      if (tombs.length > 0) {
        const t = Buffer.concat(tombs);
        await writeAll(newFile!.fh, t, pos);
        pos += t.length;
        await newFile!.fh.datasync();
      }
      ctx.crashPoint('compact-tombstoned');

      let liveBytes = 0;
      const ops: IndexOp[] = [];
      for (const [key, e] of placed) {
        ops.push(ctx.index.putOp(b.id, key, e));
        liveBytes += e.length;
      }
      const meta: BlockMeta = { flags: b.meta.flags, gen: newGen, end: pos, liveCount: placed.size, liveBytes, deletedBytes };
      ops.push(ctx.index.metaOp(b.id, meta));
      let release!: () => void;
      b.switching = new Promise<void>((r) => (release = r));
      try {
        // Synced: the old generation is unlinked next, and only a durable switch makes it garbage.
        await ctx.index.apply(ops, { sync: true });
        ctx.crashPoint('compact-switched');
        b.file = newFile!;
        b.meta = meta;
        switched = true;
        ctx.index.clearCache();
      } finally {
        b.switching = undefined;
        release();
      }
      return { block: b.id, beforeBytes, afterBytes: pos, records: placed.size };
    });

    oldFile.retire();
    await unlink(oldFile.path);
    await syncDir(ctx.blocksDir);
    ctx.crashPoint('compact-unlinked');
    ctx.metrics?.compactedBytes.inc(Math.max(0, beforeBytes - result.afterBytes));
    ctx.log?.info(result, 'compacted block');
    return result;
  } catch (err) {
    if (newFile && !switched) {
      newFile.retire();
      await unlink(newFile.path).catch(() => {});
    }
    throw ioError(err, `compaction of block ${b.id}`);
  } finally {
    oldFile.unpin();
    b.compacting = false;
    b.deletedDuringCompaction = undefined;
  }
}
