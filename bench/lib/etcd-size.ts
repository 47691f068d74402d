// What the name server's records weigh in etcd: bytes of etcd's database (bbolt, after
// compaction and defragmentation) per block record and per legacy path, and the member's
// resident memory per record (etcd keeps an index of every key in memory). One new member,
// n records of each kind written through the name server's own store (EtcdMetadataStore) in
// batches of 128. The method of nameserver/metadata-store/README.md, "What it costs in etcd"
// (it was test/metadata-store/etcd-size.test.ts, skipped unless asked for: a measurement,
// not a test); the ha section runs it (`npm run bench -- --only ha --etcd-records N`).
import { randomBytes } from 'node:crypto';
import type { BlockRecord } from '../../nameserver/block-map.ts';
import type { LegacyRecord } from '../../nameserver/legacy-table.ts';
import { EtcdMetadataStore } from '../../nameserver/metadata-store/etcd.ts';
import { startEtcd } from '../../test/helpers/etcd.ts';

/** Writes n block records and n legacy paths into a new etcd member and weighs them. */
export async function etcdBytes(n: number) {
  const hex = (k: number) => randomBytes(k).toString('hex');
  const b64 = (k: number) => randomBytes(k).toString('base64url').slice(0, k);
  const etcd = await startEtcd();
  try {
    const endpoint = etcd.endpoints[0]!;
    const s = await EtcdMetadataStore.open({ endpoints: etcd.endpoints, prefix: '/ugcfs/default', timeoutMs: 60_000 });
    const settle = async () => {
      await s.client.compact(await s.currentRevision());
      await s.client.defragment(endpoint);
      const st = await s.client.status(endpoint);
      const metrics = await (await fetch(`${endpoint}/metrics`)).text();
      const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1]);
      return { dbSize: st.dbSize, metricDb: metric('etcd_mvcc_db_total_size_in_bytes'), rss: metric('process_resident_memory_bytes') };
    };
    const fill = async <V>(ns: string, make: (i: number) => [string, V]) => {
      const space = s.namespace<V>(ns);
      let keyBytes = 0;
      let valueBytes = 0;
      for (let i = 0; i < n; i += 128) {
        const ops = [];
        for (let j = i; j < Math.min(n, i + 128); j++) {
          const [key, value] = make(j);
          keyBytes += Buffer.byteLength(`/ugcfs/default/${ns}/${key}`);
          valueBytes += Buffer.byteLength(JSON.stringify(value));
          ops.push({ type: 'put' as const, key, value });
        }
        await space.batch(ops);
      }
      return { keyBytes: keyBytes / n, valueBytes: valueBytes / n };
    };
    const dsIds = Array.from({ length: 40 }, () => `ds-${hex(4)}`);
    const t0 = Date.now();
    const base = await settle();
    const blockShape = await fill<BlockRecord>('blocks', (i) => [
      String(i + 1),
      { id: i + 1, replication: 2, state: i % 50 === 0 ? 'writable' : 'sealed', replicas: [dsIds[i % 40]!, dsIds[(i * 7 + 3) % 40]!], createdAt: 1_700_000_000_000 + i * 60_000 },
    ]);
    const afterBlocks = await settle();
    const legacyShape = await fill<LegacyRecord>('legacy', (i) => {
      const seller = String(1_000_000_000 + ((i * 7919) % 900_000_000));
      return [`/bao/uploaded/i${i % 8}/${seller}/O1CN01${b64(16)}_!!${seller}.jpg`, { fid: `1${b64(20)}`, sha256: hex(32), size: 20_000 + (i % 500_000), updatedAt: 1_700_000_000_000 + i }];
    });
    const afterLegacy = await settle();
    await s.close();
    const per = (a: { dbSize: number }, b: { dbSize: number }) => (b.dbSize - a.dbSize) / n;
    const blocks = per(base, afterBlocks);
    const legacy = per(afterBlocks, afterLegacy);
    const fit = (bytes: number, p: number) => Math.floor((bytes - base.dbSize) / p);
    const GiB = 1024 ** 3;
    return {
      records: n,
      seconds: (Date.now() - t0) / 1000,
      emptyDb: base.dbSize,
      block: { keyBytes: blockShape.keyBytes, valueBytes: blockShape.valueBytes, dbBytesPerRecord: Math.round(blocks), rssBytesPerRecord: Math.round((afterBlocks.rss - base.rss) / n), fit2GiB: fit(2 * GiB, blocks), fit8GiB: fit(8 * GiB, blocks) },
      legacy: { keyBytes: legacyShape.keyBytes, valueBytes: legacyShape.valueBytes, dbBytesPerRecord: Math.round(legacy), rssBytesPerRecord: Math.round((afterLegacy.rss - afterBlocks.rss) / n), fit2GiB: fit(2 * GiB, legacy), fit8GiB: fit(8 * GiB, legacy) },
      dbSizeMetricMatchesStatus: afterLegacy.metricDb === afterLegacy.dbSize,
    };
  } finally {
    await etcd.stop();
  }
}
