// Opening a store: the index (rebuilt from the block files if LevelDB refuses it as
// corrupt) and every block reconciled with it, by the rules of dataserver/README.md,
// "Recovery on open": what can be proven whole is adopted, what cannot is set aside in
// quarantine/, and nothing is unlinked or cut that is not proven garbage.
import { readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDir } from '../src/base/durable-fs.ts';
import { Block, BlockFile, blockFileName, parseBlockFileName } from './block.ts';
import { recoverTail } from './block-recover.ts';
import { META_INCOMPLETE, NeedleIndex, metaWith, type BlockMeta } from './needle-index.ts';
import type { QuarantineReason } from './quarantine.ts';
import type { StoreContext } from './store-context.ts';
import type { StoreOptions } from './block-store.ts';

export const EMPTY_META: BlockMeta = { flags: 0, gen: 0, end: 0, liveCount: 0, liveBytes: 0, deletedBytes: 0 };

/** What opening had to repair (BlockStore.recovered). */
export interface Recovered {
  /** records re-indexed past watermarks */
  records: number;
  /** bytes of torn tails cut (a copy is in quarantine/) */
  cutBytes: number;
  /** block generations the index did not name */
  leftoverFiles: number;
  /** files set aside in quarantine/ */
  quarantined: number;
}

/**
 * The index is derived data: the block files alone rebuild it. So an index LevelDB refuses
 * as corrupt is moved aside (index.corrupt-<ms>, kept for a post-mortem) and every block is
 * indexed again from its file, instead of the server refusing to start.
 */
export async function openIndex(opts: StoreOptions): Promise<NeedleIndex> {
  const dir = join(opts.dir, 'index');
  const o = { cacheEntries: opts.cacheEntries, blockCacheBytes: opts.indexBlockCacheBytes, metrics: opts.metrics, log: opts.log };
  try {
    return await NeedleIndex.open(dir, o);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'LEVEL_CORRUPTION') throw err;
    const aside = `${dir}.corrupt-${Date.now()}`;
    opts.log?.error({ err, movedTo: aside }, 'the index is corrupt; moving it aside and rebuilding it from the block files');
    await rename(dir, aside);
    await syncDir(opts.dir);
    return NeedleIndex.open(dir, o);
  }
}

export async function openBlocks(ctx: StoreContext, recovered: Recovered, attach: (b: Block) => Block): Promise<void> {
  const { index, blocksDir, log, quarantine } = ctx;
  const metas = await index.metas();
  const gens = new Map<number, number[]>();
  for (const name of await readdir(blocksDir)) {
    const p = parseBlockFileName(name);
    if (!p) continue;
    const list = gens.get(p.id) ?? [];
    list.push(p.gen);
    gens.set(p.id, list);
  }
  const ids = new Set([...metas.keys(), ...gens.keys()]);
  const setAside = async (id: number, gen: number, reason: QuarantineReason) => {
    recovered.quarantined++;
    await quarantine.moveIn(blocksDir, blockFileName(id, gen), reason, ctx.clock.stampNow());
  };
  for (const id of [...ids].sort((a, b) => a - b)) {
    const onDisk = (gens.get(id) ?? []).sort((a, b) => a - b);
    let meta = metas.get(id);
    if (meta && (meta.flags & META_INCOMPLETE) !== 0) {
      // A pull that did not finish: a partial replica must never be reported as a good one.
      // Set aside (the copy being whole is synced before any source is deleted, so the
      // block lives elsewhere); the name server will copy it again.
      log?.warn({ block: id }, 'setting aside an incomplete block copy');
      for (const g of onDisk) await setAside(id, g, 'incomplete-copy');
      await index.dropBlock(id);
      continue;
    }
    if (meta && !onDisk.includes(meta.gen)) {
      const later = onDisk.filter((g) => g > meta!.gen);
      if (later.length === 0) {
        log?.error({ block: id, gen: meta.gen }, 'block file missing; dropping its index entries');
        for (const g of onDisk) await setAside(id, g, 'leftover-generation');
        await index.dropBlock(id);
        continue;
      }
      // The index lost a compaction's switch (it predates the synced switch, or the disk
      // lied). A generation is unlinked only after a later one was switched in whole, so
      // the oldest generation on disk is complete: adopt it and index it from its start.
      log?.error({ block: id, indexed: meta.gen, adopted: later[0] }, 'indexed block generation missing; adopting the oldest one on disk and rescanning it');
      await index.dropBlock(id);
      meta = metaWith(EMPTY_META, { gen: later[0]!, flags: meta.flags });
    }
    // Without a meta the block was created but its first batch never landed (or the index
    // was lost): adopt the oldest generation, by the same rule, and index it from the start.
    meta ??= metaWith(EMPTY_META, { gen: onDisk[0]! });
    for (const g of onDisk) {
      if (g === meta.gen) continue;
      log?.info({ block: id, gen: g }, 'setting aside a leftover block generation');
      recovered.leftoverFiles++;
      await setAside(id, g, 'leftover-generation');
    }
    const file = await BlockFile.open(blocksDir, id, meta.gen, false);
    const b = attach(new Block(id, blocksDir, file, meta));
    const r = await recoverTail(b, ctx);
    recovered.records += r.records;
    recovered.cutBytes += r.cut;
  }
}
