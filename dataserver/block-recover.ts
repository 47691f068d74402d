// Reconciles a block file with its index on open (and after a pull): only the bytes past the
// watermark are scanned. Whole records there are indexed (tombstones applied), damaged bytes
// between them are skipped (counted as dead), and whatever follows the last whole record is
// copied to quarantine/ and cut off. Nothing past the watermark is assumed unacknowledged:
// the watermark's index batch is not synced, so after a power cut it may trail records that
// were fsynced and acknowledged.
import { blockFileName, type Block } from './block.ts';
import { scanBlock } from './block-scan.ts';
import { isTombstone } from './needle.ts';
import { metaWith, type BlockMeta, type IndexEntry, type IndexOp } from './needle-index.ts';
import type { StoreContext } from './store-context.ts';

const BATCH_RECORDS = 10_000;

export interface RecoverResult {
  /** records re-indexed from the tail */
  records: number;
  /** bytes cut off the end */
  cut: number;
}

export async function recoverTail(b: Block, ctx: StoreContext): Promise<RecoverResult> {
  const fh = b.file.fh;
  const size = (await fh.stat()).size;
  let meta: BlockMeta = metaWith(b.meta);

  if (size < meta.end) {
    // Only possible when fsync was off and the machine lost its page cache: drop the index
    // entries that point past the surviving bytes so they are not served as corrupt.
    ctx.log?.warn({ block: b.id, indexed: meta.end, size }, 'block file is shorter than its index; dropping lost records');
    const ops: IndexOp[] = [];
    for await (const { key, entry } of ctx.index.entries(b.id)) {
      if (entry.offset + entry.length > size) {
        ops.push(ctx.index.delOp(b.id, key));
        meta.liveCount = Math.max(0, meta.liveCount - 1);
        meta.liveBytes = Math.max(0, meta.liveBytes - entry.length);
      }
    }
    meta.end = size;
    ops.push(ctx.index.metaOp(b.id, meta));
    await ctx.index.apply(ops);
    b.meta = meta;
    return { records: 0, cut: 0 };
  }
  if (size === meta.end) return { records: 0, cut: 0 };

  let ops: IndexOp[] = [];
  // Entries changed in this batch but not yet in LevelDB; null marks a deletion.
  const pending = new Map<bigint, IndexEntry | null>();
  const current = async (key: bigint): Promise<IndexEntry | undefined> => {
    const p = pending.get(key);
    if (p !== undefined) return p ?? undefined;
    return ctx.index.get(b.id, key, false);
  };
  let good = meta.end;
  let records = 0;
  const commit = async () => {
    meta.end = good;
    ops.push(ctx.index.metaOp(b.id, meta));
    await ctx.index.apply(ops);
    ops = [];
    pending.clear();
  };

  let damaged = 0;
  for await (const item of scanBlock(fh, meta.end, size, { distrustBadRecords: true })) {
    if (item.problem) {
      damaged += item.length;
      continue;
    }
    if (damaged > 0) {
      // Damage with whole records after it: keep the bytes where they are (scrub reports
      // them), count them as dead, and go on.
      ctx.log?.warn({ block: b.id, at: good, bytes: damaged }, 'skipped damaged bytes past the watermark; whole records follow them');
      meta.deletedBytes += damaged;
      damaged = 0;
    }
    const n = item.needle;
    const prev = await current(n.key);
    if (isTombstone(n.flags)) {
      if (prev) {
        meta.liveCount = Math.max(0, meta.liveCount - 1);
        meta.liveBytes = Math.max(0, meta.liveBytes - prev.length);
        meta.deletedBytes += prev.length;
      }
      meta.deletedBytes += item.length;
      ops.push(ctx.index.delOp(b.id, n.key));
      pending.set(n.key, null);
    } else {
      if (prev) {
        meta.liveCount = Math.max(0, meta.liveCount - 1);
        meta.liveBytes = Math.max(0, meta.liveBytes - prev.length);
        meta.deletedBytes += prev.length;
      }
      const entry: IndexEntry = { offset: item.offset, length: item.length, cookie: n.cookie, flags: 0 };
      meta.liveCount++;
      meta.liveBytes += item.length;
      ops.push(ctx.index.putOp(b.id, n.key, entry));
      pending.set(n.key, entry);
    }
    good = item.offset + item.length;
    records++;
    if (ops.length >= BATCH_RECORDS) await commit();
  }

  const cut = size - good;
  if (cut > 0) {
    // No whole record follows: a write torn by a crash. Kept in quarantine/ before the cut.
    await ctx.quarantine.copyIn(fh, good, size, blockFileName(b.id, b.meta.gen), 'torn-tail', ctx.clock.stampNow());
    ctx.log?.warn({ block: b.id, at: good, bytes: cut }, 'cut a torn or corrupt tail off the block (copy in quarantine/)');
    await fh.truncate(good);
    await fh.datasync();
  }
  await commit();
  b.meta = meta;
  if (records > 0) ctx.log?.info({ block: b.id, records }, 'recovered records past the index watermark');
  return { records, cut };
}
