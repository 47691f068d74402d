// Scrub: read every record of a block, check its CRC32-C, and report the bad ones (and index
// entries that point at nothing). The digest covers the sorted (key, data CRC) pairs of live
// records only, so two replicas agree on it even though their byte layouts differ (each
// replica appends in its own order, and compaction rewrites layouts).
import { createHash } from 'node:crypto';
import type { ScrubResult } from '../src/wire/protocol.ts';
import type { Block } from './block.ts';
import { scanBlock } from './block-scan.ts';
import type { StoreContext } from './store-context.ts';

export async function scrubBlock(b: Block, ctx: StoreContext): Promise<ScrubResult> {
  // A compaction that switches generations mid-scrub makes index and file disagree: retry.
  for (let attempt = 0; ; attempt++) {
    const file = b.file;
    const r = await scrubOnce(b, ctx);
    if (b.file === file || attempt >= 2) return r;
  }
}

async function scrubOnce(b: Block, ctx: StoreContext): Promise<ScrubResult> {
  const file = b.file;
  file.pin();
  try {
    const end = b.meta.end;
    const live = new Map<number, bigint>();
    for await (const { key, entry } of ctx.index.entries(b.id)) {
      if (b.file !== file) break;
      live.set(entry.offset, key);
    }
    const bad: ScrubResult['bad'] = [];
    const pairs: Array<[bigint, number]> = [];
    let records = 0;
    for await (const item of scanBlock(file.fh, 0, end)) {
      records++;
      const indexedKey = live.get(item.offset);
      live.delete(item.offset);
      if (item.problem) {
        if (item.problem === 'crc') ctx.metrics?.checksumFailures.inc();
        const key = item.header?.key ?? indexedKey;
        bad.push({ key: key === undefined ? '' : key.toString(), offset: item.offset, reason: item.problem });
        continue;
      }
      if (indexedKey !== undefined && indexedKey === item.needle.key) pairs.push([indexedKey, item.needle.dataCrc]);
      else if (indexedKey !== undefined) bad.push({ key: indexedKey.toString(), offset: item.offset, reason: 'index-mismatch' });
    }
    for (const [offset, key] of live) bad.push({ key: key.toString(), offset, reason: 'missing' });
    pairs.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    const h = createHash('sha256');
    const rec = Buffer.alloc(12);
    for (const [key, crc] of pairs) {
      rec.writeBigUInt64BE(key, 0);
      rec.writeUInt32BE(crc, 8);
      h.update(rec);
    }
    if (bad.length > 0) ctx.log?.warn({ block: b.id, bad: bad.length }, 'scrub found damaged records');
    return { block: b.id, records, bad, digest: h.digest('hex') };
  } finally {
    file.unpin();
  }
}
