// Copying a whole block from a peer, for repair and moves: stream the peer's bytes from our
// current end, again and again until a round brings nothing new (the peer may still take
// writes or deletes meanwhile), then index the copy by scanning it. The block carries the
// INCOMPLETE flag until the copy is indexed, so a crash mid-pull never leaves a partial
// replica that claims to be whole.
import type { Dispatcher } from 'undici';
import { DataserverClient } from '../src/clients/dataserver-client.ts';
import { UgcfsError } from '../src/base/errors.ts';
import type { Block } from './block.ts';
import { ioError } from './block-write.ts';
import { writeAll } from './file-write.ts';
import type { BlockStore } from './block-store.ts';
import { META_INCOMPLETE, metaWith } from './needle-index.ts';

const MAX_ROUNDS = 64;

export async function pullBlock(store: BlockStore, id: number, from: string, secret: string, timeoutMs?: number, dispatcher?: Dispatcher): Promise<{ bytes: number }> {
  const peer = new DataserverClient({ secret, dispatcher });
  let b: Block;
  if (store.has(id)) {
    b = store.block(id);
    if (!b.incomplete || b.meta.end > 0 || b.pulling) {
      throw new UgcfsError('UGCFS_ERR_CONFLICT', `block ${id} is already held here`);
    }
  } else {
    // A concurrent pull (or create) of the same block wins; this one is refused.
    if (!(await store.createBlock(id, META_INCOMPLETE))) throw new UgcfsError('UGCFS_ERR_CONFLICT', `block ${id} is already held here`);
    b = store.block(id);
  }
  b.pulling = true;
  const metrics = store.ctx.metrics;
  let pos = 0;
  let gen: string | undefined;
  try {
    const fh = b.file.fh;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const res = await peer.blockData(from, id, pos, timeoutMs === undefined ? undefined : { timeoutMs });
      const peerGen = res.gen;
      if (gen !== undefined && peerGen !== gen) {
        // The peer compacted under us: its offsets changed, so start over.
        await res.body.dump();
        await fh.truncate(0);
        pos = 0;
        gen = peerGen;
        continue;
      }
      gen = peerGen;
      const before = pos;
      for await (const chunk of res.body) {
        const buf = chunk as Buffer;
        await writeAll(fh, buf, pos);
        pos += buf.length;
        metrics?.blockCopyBytes.inc({ direction: 'in' }, buf.length);
      }
      if (pos === before) break;
    }
    await fh.datasync();
    await b.lock.run(async () => {
      b.meta = metaWith(b.meta, { flags: b.meta.flags & ~META_INCOMPLETE });
      await store.reindex(b);
      // reindex writes the meta only when it found records; an empty copy needs it too. Synced:
      // the name server may delete the source as soon as we answer that the copy is whole.
      await store.ctx.index.apply([store.ctx.index.metaOp(b.id, b.meta)], { sync: true });
    });
    store.ctx.log?.info({ block: id, bytes: pos, from }, 'pulled block from peer');
    return { bytes: pos };
  } catch (err) {
    // Leave nothing half-copied behind: the name server will choose again.
    b.pulling = false;
    await store.deleteBlock(id).catch(() => {});
    throw ioError(err, `pull of block ${id}`);
  } finally {
    b.pulling = false;
  }
}
