// The etcd side of the name-server promotion bench (bench/ns-promotion.ts): the layout's block
// records written into etcd through the name server's own store code (EtcdMetadataStore,
// namespace 'blocks', `nextBlockId` moved past them as nameserver/sequence.ts stores it), and
// what the member weighs (its database size and resident memory, from its /metrics).
import type { BlockRecord } from '../../nameserver/block-map.ts';
import type { EtcdMetadataStore } from '../../nameserver/metadata-store/etcd.ts';
import type { NamespaceBatchOp } from '../../nameserver/metadata-store/index.ts';
import { layoutRecord } from './ns-scale-probe.ts';
import type { Layout } from './ns-scale-layout.ts';

/**
 * Writes blocks 1..layout.blocks, `inFlight` transactions of the store's largest size
 * (etcd's --max-txn-ops) at a time; `progress` is told every million.
 */
export async function seedEtcdBlocks(store: EtcdMetadataStore, layout: Layout, createdAt: number, inFlight: number, progress: (done: number) => void = () => {}): Promise<void> {
  const blocks = store.namespace<BlockRecord>('blocks');
  const per = store.maxTxnOps;
  let next = 1;
  let done = 0;
  const worker = async () => {
    while (next <= layout.blocks) {
      const from = next;
      const to = Math.min(layout.blocks + 1, from + per);
      next = to;
      const ops: Array<NamespaceBatchOp<BlockRecord>> = [];
      for (let id = from; id < to; id++) ops.push({ type: 'put', key: String(id), value: layoutRecord(id, layout, createdAt) });
      await blocks.batch(ops);
      const before = done;
      done += to - from;
      if (Math.floor(done / 1e6) > Math.floor(before / 1e6)) progress(done);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const meta = store.namespace<string>('meta');
  const stored = await meta.get('nextBlockId');
  if (stored === undefined || BigInt(stored) <= BigInt(layout.blocks)) await meta.put('nextBlockId', String(layout.blocks + 1));
}

/** The member's database size (bytes, as /v3/maintenance/status says) and resident memory. */
export async function etcdWeight(endpoint: string): Promise<{ dbBytes: number; rssBytes: number }> {
  const text = await (await fetch(`${endpoint}/metrics`)).text();
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  return { dbBytes: metric('etcd_mvcc_db_total_size_in_bytes'), rssBytes: metric('process_resident_memory_bytes') };
}
