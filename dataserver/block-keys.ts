// The keys a block copy knows, live or tombstoned, for verify to compare copies key by key.
// Live state comes from the index (what reads answer); deletions come from the tombstones
// in the file, since the index forgets a deleted key entirely. A key in neither was never
// written to this copy.
import type { BlockKeyState } from '../src/wire/protocol.ts';
import type { Block } from './block.ts';
import { scanBlock } from './block-scan.ts';
import { isTombstone } from './needle.ts';
import type { StoreContext } from './store-context.ts';

export async function listBlockKeys(b: Block, ctx: StoreContext): Promise<BlockKeyState[]> {
  // A compaction that switches generations mid-listing makes index and file disagree: retry.
  for (let attempt = 0; ; attempt++) {
    const file = b.file;
    const r = await listOnce(b, ctx);
    if (b.file === file || attempt >= 2) return r;
  }
}

async function listOnce(b: Block, ctx: StoreContext): Promise<BlockKeyState[]> {
  const file = b.file;
  file.pin();
  try {
    const end = b.meta.end;
    const live = new Map<bigint, { offset: number; cookie: number }>();
    for await (const { key, entry } of ctx.index.entries(b.id)) live.set(key, { offset: entry.offset, cookie: entry.cookie });
    const found = new Map<bigint, BlockKeyState>();
    for await (const item of scanBlock(file.fh, 0, end)) {
      if (item.problem) continue;
      const n = item.needle;
      const indexed = live.get(n.key);
      if (isTombstone(n.flags)) {
        if (!indexed) found.set(n.key, { key: n.key.toString(), cookie: n.cookie, deleted: true, crc: 0, size: 0 });
      } else if (indexed && indexed.offset === item.offset) {
        found.set(n.key, { key: n.key.toString(), cookie: n.cookie, deleted: false, crc: n.dataCrc, size: n.data.length });
      }
    }
    // An indexed record the scan could not read is damage scrub reports; list it so the
    // copies still differ on it rather than look as if the key were absent.
    for (const [key, e] of live) if (!found.has(key)) found.set(key, { key: key.toString(), cookie: e.cookie, deleted: false, crc: 0, size: -1 });
    return [...found.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)).map(([, v]) => v);
  } finally {
    file.unpin();
  }
}
