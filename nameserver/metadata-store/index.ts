// The metadata store the name server persists through (README.md beside this file): the
// embedded LevelDB of a single name server, or etcd for a high-availability group.
//
//   const store = await openMetadataStore({ data: config.data });                      // today
//   const store = await openMetadataStore({ etcd: 'http://a:2379,http://b:2379', etcdPrefix });
//   const blocks = store.namespace<BlockRecord>('blocks');                              // was jsonSublevel(db, 'blocks')
import { parseEtcdEndpoints } from '../../src/clients/etcd-client.ts';
import { defaultEtcdPrefix, EtcdMetadataStore } from './etcd.ts';
import { LevelMetadataStore } from './leveldb.ts';
import type { MetadataStore } from './types.ts';

export * from './types.ts';
export { isCompacted, isEtcdDown, isNotLeader, noQuorum, NotLeaderError, type Fence } from './errors.ts';
export { defaultEtcdPrefix, EtcdMetadataStore, type CampaignResult, type EtcdStoreOptions, type LeaderInfo, type Lease, type LeaseKeeper, type MetadataWatch, type WatchEvent } from './etcd.ts';
export { LevelMetadataStore } from './leveldb.ts';
export { ETCD_DEFAULT_MAX_TXN_OPS, ETCD_MAX_REQUEST_BYTES, MAX_KEY_BYTES, MAX_REQUEST_BYTES, MAX_VALUE_BYTES } from './limits.ts';

export interface MetadataStoreConfig {
  /** LevelDB directory (used when `etcd` is empty) */
  data?: string;
  /** `--etcd URL,...`: etcd member client URLs */
  etcd?: string;
  /** `--etcd-prefix` (default /ugcfs/<cluster>) */
  etcdPrefix?: string;
  /** cluster name for the default prefix */
  cluster?: string;
  /** the etcd cluster's --max-txn-ops, when raised */
  maxTxnOps?: number;
}

export async function openMetadataStore(c: MetadataStoreConfig): Promise<MetadataStore> {
  const maxTxnOps = c.maxTxnOps === undefined ? {} : { maxTxnOps: c.maxTxnOps };
  if (c.etcd) {
    return EtcdMetadataStore.open({ endpoints: parseEtcdEndpoints(c.etcd), prefix: c.etcdPrefix || defaultEtcdPrefix(c.cluster), ...maxTxnOps });
  }
  if (!c.data) throw new Error('metadata store: neither a data directory nor --etcd');
  return LevelMetadataStore.open(c.data, maxTxnOps);
}
