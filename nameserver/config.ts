// The name server's options table. Timings are in milliseconds; tests shrink them so the
// cluster notices deaths and repairs within a few seconds.
import { opt, type ConfigOf } from '../src/base/config.ts';
import { COMMON_SERVER_OPTIONS } from '../src/base/role-options.ts';
import { OPS_OPTIONS } from './ops-config.ts';

export const NAMESERVER_OPTIONS = {
  ...COMMON_SERVER_OPTIONS,
  data: opt.string('', 'directory for the name server\'s LevelDB state (required without --etcd)'),
  etcd: opt.string('', 'etcd member client URLs, comma-separated: the state lives in etcd and this name server joins a high-availability group', { env: 'UGCFS_ETCD' }),
  etcdPrefix: opt.string('', 'key prefix of this cluster in etcd (default /ugcfs/default)', { env: 'UGCFS_ETCD_PREFIX' }),
  advertiseUrl: opt.url('', 'URL the other servers reach this name server at (GET /leader answers it); default: its listen URL', { env: 'UGCFS_ADVERTISE_URL' }),
  leaseMs: opt.int(5000, 'with --etcd: the leader\'s lease; a dead leader is replaced about this long after it died (etcd grants whole seconds)', { min: 1000, max: 600_000 }),
  importState: opt.string('', 'with --etcd: copy the LevelDB state in this directory (a single name server\'s --data, stopped) into etcd once, verified, then run'),
  port: opt.int(7000, 'port to listen on (0 picks a free one)', { env: 'UGCFS_NAMESERVER_PORT', min: 0, max: 65535 }),
  replicas: opt.int(2, 'copies of every block (default for new blocks)', { min: 1, max: 8 }),
  heartbeatMs: opt.int(1000, 'interval at which data servers are expected to send heartbeats', { min: 10 }),
  deadAfterMs: opt.int(5000, 'a data server silent for this long is dead', { min: 20 }),
  repairDelayMs: opt.int(30_000, 'wait this long after a data server dies before re-replicating its blocks (a reboot causes no copy storm)', { min: 0 }),
  startupGraceMs: opt.int(10_000, 'after start, wait this long for block reports before judging replication (no repair during it)', { min: 0 }),
  reportWaitMs: opt.int(600_000, 'after a start or an election, repair also waits until every live data server\'s full block report is in, at most this long', { min: 0 }),
  fullReportsAtOnce: opt.int(16, 'data servers sending a full block report at the same time (after a restart or an election); the others wait their turn', { min: 1, max: 10_000 }),
  repairConcurrency: opt.int(2, 'blocks re-replicated at the same time', { min: 1, max: 64 }),
  writableBlocks: opt.int(0, 'writable blocks kept open per replica count (0: one per live data server)', { min: 0, max: 1024 }),
  keyLease: opt.int(10_000, 'file keys leased (persisted) at a time; a crash skips at most this many', { min: 1, max: 10_000_000 }),
  adoptBlocks: opt.bool(false, 'adopt blocks data servers report that this state does not know (recovery after losing the name server\'s data dir); off: such reports are refused'),
  adminToken: opt.string('', 'token for admin calls (status, ops); the cluster secret also works', { env: 'UGCFS_ADMIN_TOKEN', secret: true }),
  ...OPS_OPTIONS,
};

export type NameserverConfig = ConfigOf<typeof NAMESERVER_OPTIONS>;
