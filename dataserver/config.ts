// Options of `ugcfs dataserver`, declared once (src/base/config.ts merges defaults, config file,
// environment and flags).
import { opt, type ConfigOf } from '../src/base/config.ts';
import { COMMON_SERVER_OPTIONS, NAMESERVER_URL_OPTION } from '../src/base/role-options.ts';

export const DATASERVER_OPTIONS = {
  ...COMMON_SERVER_OPTIONS,
  ...NAMESERVER_URL_OPTION,
  data: opt.string('', 'data directory (blocks, index, id); created if missing', { env: 'UGCFS_DATA', required: true }),
  port: opt.int(7001, 'port to listen on (0 picks a free one)', { env: 'UGCFS_PORT', min: 0, max: 65535 }),
  rack: opt.string('default', 'rack name, so replicas of a block land on distinct racks', { env: 'UGCFS_RACK' }),
  blockSize: opt.int(256 * 1024 * 1024, 'block file size at which a block is sealed (accepts 64M etc.)', { min: 4096, max: 2 ** 40 }),
  publicUrl: opt.url('', 'URL peers and clients use to reach this server (default: the listen URL)'),
  id: opt.string('', 'data server id to use on first start (default ds-<8 hex>); kept in <data>/id'),
  fsync: opt.bool(true, 'fdatasync block files before acknowledging writes (group commit)', { env: 'UGCFS_FSYNC' }),
  directWrites: opt.bool(true, 'append the whole 4 KiB pages of each group commit with O_DIRECT, around the page cache (the partial pages at either end stay buffered); off, or where the file system refuses O_DIRECT, every append is buffered'),
  heartbeatMs: opt.int(1000, 'interval between heartbeats to the name server', { min: 50, max: 600_000 }),
  tombstoneKeepHours: opt.number(14 * 24, 'compaction keeps a tombstone this long after its delete (0: for ever); `ugcfs verify --repair` must run within it, or a copy that missed the delete can bring the file back', { min: 0 }),
  readBufferPoolBytes: opt.int(32 * 1024 * 1024, 'bytes of read buffers kept for reuse by GET /needles (0: a fresh buffer per read; records over 1 MiB always get one)', { min: 0 }),
  writeBufferPoolBytes: opt.int(16 * 1024 * 1024, 'bytes of request-body buffers kept for reuse by PUT /needles and needle batches (0: gathered into fresh buffers; bodies over 8 MiB always are)', { min: 0 }),
  syncReads: opt.bool(true, 'read records of up to 256 KiB with a synchronous pread on the event loop, a third less CPU per read from the page cache; two slow reads in a row, the second seen reading from storage, send reads to the thread pool for 2 s, so a cold disk holds the loop for at most two reads per pause (false: always the thread pool)'),
  indexCacheEntries: opt.int(100_000, 'index entries cached in memory (typed arrays, about 50 bytes each)', { min: 0 }),
  indexBlockCacheBytes: opt.int(64 * 1024 * 1024, "bytes of LevelDB's cache of decompressed index blocks, behind the entry cache (accepts 64M etc.; filled only as blocks are read). LevelDB's own 8 MiB holds about a third of a 1M-file index", { min: 0, max: 2 ** 32 - 1 }),
  testCrashAt: opt.string('', 'TEST ONLY: SIGKILL this process at the named storage step (docs in dataserver/README.md)', { env: 'UGCFS_TEST_CRASH_AT' }),
  quarantineKeepHours: opt.number(7 * 24, 'data set aside in quarantine/ (dataserver/README.md, "Quarantine") is removed after this long, by the cluster clock (0: kept until removed by hand)', { min: 0 }),
  testClockOffsetMs: opt.int(0, 'TEST ONLY: shift this server\'s own wall clock by this many ms in the decisions that follow the cluster clock (tombstone times and expiry), to show a wrong clock cannot expire tombstones early', { env: 'UGCFS_TEST_CLOCK_OFFSET_MS', min: -(2 ** 44), max: 2 ** 44 }),
};

export type DataserverConfig = ConfigOf<typeof DATASERVER_OPTIONS>;
