// The internal wire protocol between ugcfs roles: route list and JSON shapes, declared once.
// docs/INTERNAL-API.md explains each route; every internal route requires the cluster secret
// (header X-Ugcfs-Secret, or Authorization: Bearer <secret>). The calls are made through
// src/clients/dataserver-client.ts and src/clients/nameserver-client.ts, never by hand.
import type { ErrorCode } from '../base/errors.ts';
import type { BlockReport, QuarantineSummary } from './heartbeat.ts';

// The heartbeat's shapes (block reports, the reply and its commands) are in heartbeat.ts.
export type { BlockReport, DsCommand, Heartbeat, HeartbeatReply, HighWaterMark, QuarantineSummary, ReportAck, ReportMessage } from './heartbeat.ts';

/** Data server routes. `:fid` is a file id text; `:id` a block id (decimal). */
export const DS_ROUTES = {
  /** PUT raw bytes. Headers: x-ugcfs-mime, x-ugcfs-owner, x-ugcfs-upload-time (ms, set by the primary),
   *  x-ugcfs-replicas (comma-separated peer base URLs to forward to; absent on forwarded writes). 201 WriteResult */
  needle: '/needles/:fid',
  /** POST a needle batch frame (src/wire/needle-batch.ts, content type BATCH_CONTENT_TYPE): several writes to
   *  the block, each record's fid naming it. x-ugcfs-replicas as for a PUT. 200 BatchWriteResult, one
   *  outcome per record in frame order; a malformed frame is refused whole (400). */
  blockNeedles: '/blocks/:id/needles',
  /** GET list of BlockReport */
  blocks: '/blocks',
  /** POST create (body {replicas?}) 201 (200 if it exists empty; 409 if it holds data) / DELETE the block and its index entries 204 / GET BlockReport */
  block: '/blocks/:id',
  /** GET raw block bytes from ?from=OFFSET to the current end; headers x-ugcfs-block-gen, x-ugcfs-block-size */
  blockData: '/blocks/:id/data',
  /** POST {from: url} — copy the block from a peer (incremental until caught up), index it. 200 {bytes} */
  blockPull: '/blocks/:id/pull',
  /** POST {readonly: boolean} — stop / resume taking writes */
  blockReadonly: '/blocks/:id/readonly',
  /** POST — compact now. 200 CompactResult */
  blockCompact: '/blocks/:id/compact',
  /** POST — check every record's CRC. 200 ScrubResult */
  blockScrub: '/blocks/:id/scrub',
  /** GET — every key the copy knows: live records and tombstones. 200 BlockKeyState[] sorted by key */
  blockKeys: '/blocks/:id/keys',
  /** GET — what quarantine/ holds: 200 QuarantineListing */
  quarantine: '/quarantine',
  /** DELETE — remove one quarantined file for good. 204, 404 if there is none of that name */
  quarantineItem: '/quarantine/:name',
} as const;

/** GET /quarantine on a data server (dataserver/quarantine.ts) */
export interface QuarantineListing {
  files: Array<{ name: string; bytes: number; reason: string; at: number }>;
  bytes: number;
}

/** Name server routes. */
export const NS_ROUTES = {
  /** POST Heartbeat -> HeartbeatReply (registers on first beat) */
  heartbeat: '/ds/heartbeat',
  /** POST {count?, replicas?} -> AssignResult (count 1..100 fids in one block) */
  assign: '/assign',
  /** GET -> BlockLocation */
  block: '/blocks/:id',
  /** POST WriteFailedReport — a write to this block failed; it stops taking writes. 200 WriteFailedReply */
  blockWriteFailed: '/blocks/:id/write-failed',
  /** POST {fid, dataservers: ids} — these replicas missed a delete; the name server replays it when they are back */
  blockMissedDeletes: '/blocks/:id/missed-deletes',
  /** POST {fid, dataservers?: ids} — a delete happened: recorded in the delete feed, replayed to the listed replicas (which missed it) when they are back.
   *  GET ?after=SEQ -> DeleteFeedPage (origins poll it to purge files deleted around them) */
  deletes: '/deletes',
  /** GET -> DataserverStatus[] */
  dataservers: '/dataservers',
  /** GET -> DataserverStatus ; DELETE forgets a dead data server (404 UGCFS_ERR_DATASERVER_NOT_FOUND when unknown) */
  dataserver: '/dataservers/:id',
  /** GET -> ClusterStatus (the `ugcfs status --json` shape is a subset) */
  status: '/status',
  /** GET ?path= -> LegacyMapping ; PUT LegacyPut -> LegacyMapping ; DELETE ?path= ; GET ?prefix=&after=&limit= (no path) -> LegacyList */
  legacy: '/legacy',
  /** POST QuotaChange -> QuotaUsage (403 UGCFS_ERR_QUOTA_EXCEEDED past `limit`) ; GET -> QuotaUsage. `:id` is an upload owner id, never a token */
  quota: '/quota/:id',
  /** POST {kind, ...args} -> Operation ; GET -> Operation[] */
  ops: '/ops',
  /** GET -> Operation */
  op: '/ops/:id',
  /** GET -> LeaderStatus (any name server, leader or standby) */
  leader: '/leader',
  /** GET — human status page (HTML) */
  page: '/',
} as const;

/** GET NS_ROUTES.leader: who leads the name-server group, as this name server sees it. */
export interface LeaderStatus {
  /** the leader's advertised URL; null while none is elected */
  leader: string | null;
  /** the leader's epoch (its leader key's etcd revision); 0 for a single name server on LevelDB */
  epoch: number;
  /** this name server's advertised URL */
  self: string;
  role: NameserverRole;
}

export type NameserverRole = 'leader' | 'standby';

/** One name server in `ugcfs status --json` (`nameservers[]`). */
export interface NameserverStatus {
  url: string;
  role: NameserverRole | null;
  epoch: number;
  alive: boolean;
}

export interface DsRef {
  id: string;
  url: string;
  rack: string;
}

/** Body of POST DS_ROUTES.block (the name server creating a block on its replicas). */
export interface BlockCreate {
  /** the other replicas of the block */
  replicas: DsRef[];
  /** the name server's cluster id, state and lease ends, as on a heartbeat reply */
  cluster?: string;
  state?: string;
  leasedUpTo?: { blockIds: string; keys: string };
}

export interface AssignResult {
  fid: string;
  block: number;
  /** replicas[0] is the primary */
  replicas: DsRef[];
  /** with {count: n > 1}: n fids in this block (fids[0] === fid), each for one file */
  fids?: string[];
}

/**
 * Body of POST NS_ROUTES.blockWriteFailed. The name server decides on `code` (a full or
 * read-only block is sealed, anything else marks it failed); `reason` is for its log.
 * Reports without `code` (clients from before it was added) are read as the code the
 * reason starts with.
 */
export interface WriteFailedReport {
  /** the block's primary the write went to */
  dsId?: string;
  /** the UGCFS_ERR_* code the write failed with */
  code?: ErrorCode;
  /** the error as text, at most 200 characters */
  reason?: string;
}

export interface WriteFailedReply {
  ok: true;
  block: number;
  /** the block's state after the report */
  state: string;
}

export interface BlockLocation {
  block: number;
  replicas: DsRef[];
  writable: boolean;
  /** e.g. 'writable', 'sealed', 'repairing', 'moving', 'compacting', 'failed' */
  state: string;
  /** ids of data servers meant to hold the block that are not live copies now (down, or missing it) */
  absent?: string[];
  /** bumped whenever the block's replica set changes (repair, move, drain); the delete feed's `moves` carry it too */
  version?: number;
}

/** A block whose replica set changed: clients drop a cached location older than `version`. */
export interface BlockMove {
  seq: number;
  block: number;
  version: number;
  at: number;
}

export interface WriteResult {
  fid: string;
  size: number;
  /** CRC32-C of the data, as stored */
  crc: number;
  /** true when this very record was already stored (a retried write): nothing was appended */
  existed?: boolean;
}

export interface CompactResult {
  block: number;
  beforeBytes: number;
  afterBytes: number;
  records: number;
}

export interface ScrubResult {
  block: number;
  records: number;
  bad: Array<{ key: string; offset: number; reason: string }>;
  /** sha256 over the sorted (key, crc) pairs of live records, to compare replicas */
  digest: string;
}

/** One key of a block copy, as GET DS_ROUTES.blockKeys lists it (verify compares copies by these). */
export interface BlockKeyState {
  /** the key (decimal: 56-bit keys do not fit a JSON number) */
  key: string;
  cookie: number;
  /** true when the copy holds a tombstone for the key (size and crc are then 0) */
  deleted: boolean;
  /** CRC32-C of the data of a live record */
  crc: number;
  size: number;
}

export interface DataserverStatus {
  id: string;
  url: string;
  rack: string;
  alive: boolean;
  blocks: number;
  usedBytes: number;
  freeBytes: number;
  lastSeenMs?: number;
  draining?: boolean;
  /** data it set aside instead of removing, when it holds any */
  quarantine?: QuarantineSummary;
}

/** A data server the name server refuses (UGCFS_ERR_FOREIGN_CLUSTER): nothing it reports counts. */
export interface ForeignDataserverStatus {
  id: string;
  url: string;
  rack: string;
  /** the cluster id it stores (absent: none, but it holds blocks this state never knew) */
  cluster?: string;
  /** why it is refused */
  reason: string;
  /** blocks it reported */
  blocks: number;
  usedBytes: number;
  freeBytes: number;
  lastSeenMs: number;
}

export interface ClusterStatus {
  /** this cluster's id (absent only while an --adopt-blocks start is still learning it) */
  cluster?: string;
  dataservers: DataserverStatus[];
  /** data servers of another cluster that send heartbeats here; never used (docs/NAMESERVER.md, "Cluster identity") */
  foreignDataservers?: ForeignDataserverStatus[];
  underReplicatedBlocks: number;
  /** the name servers of the group that are up, as the answering one sees them (a single name server: itself) */
  nameservers?: NameserverStatus[];
  blocks: number;
  replicas: number;
  usedBytes: number;
  freeBytes: number;
  operations: Operation[];
}

export interface DeleteEvent {
  seq: number;
  fid: string;
  /** ms since the epoch, as recorded by the name server */
  at: number;
}

export interface DeleteFeedPage {
  /** the feed's id: a name server that lost its state starts a new feed, and cursors into the old one mean nothing */
  feed: string;
  /** the newest sequence number (pass as `after` next time) */
  seq: number;
  deletes: DeleteEvent[];
  /** replica-set changes in the same sequence as the deletes (absent from older name servers) */
  moves?: BlockMove[];
  /** false when deletes after `after` were already dropped from the feed (or the feed was reset): purge everything */
  complete: boolean;
}

export interface LegacyMapping {
  path: string;
  fid: string;
  /** sha256 (hex) of the stored bytes, so migrate can tell unchanged files without reading them back */
  sha256?: string;
  size?: number;
  /** ms since epoch of the last change (set by the name server) */
  updatedAt?: number;
}

/** PUT body of NS_ROUTES.legacy: `ifAbsent` makes it a create that answers 409 when another fid is mapped. */
export interface LegacyPut extends LegacyMapping {
  ifAbsent?: boolean;
}

/** POST body of NS_ROUTES.quota: `delta` bytes more (upload) or fewer (delete); a positive one past `limit` is refused. */
export interface QuotaChange { delta: number; limit?: number }
/** What an upload owner stores, as the name server counts it. */
export interface QuotaUsage { owner: string; used: number }

export interface LegacyList {
  mappings: LegacyMapping[];
  /** pass as `after` for the next page; absent on the last page */
  next?: string;
}

export type OperationKind = 'rebalance' | 'drain' | 'verify' | 'compact' | 'repair';

export interface Operation {
  id: string;
  kind: OperationKind;
  state: 'planned' | 'running' | 'done' | 'failed' | 'interrupted';
  startedAt: number;
  finishedAt?: number;
  /** work units (block moves, blocks checked) done and total */
  done: number;
  total: number;
  bytesDone: number;
  message?: string;
  /** kind-specific details (the plan, damage found, ...) */
  details?: Record<string, unknown>;
}

/**
 * What a record's media type and owner may hold: they travel as header values and in needle
 * batch frames (8-bit lengths, latin1), so printable ASCII of at most 255 characters.
 */
export function isMetaText(s: string): boolean {
  return s.length <= 255 && /^[\x20-\x7e]*$/.test(s);
}

export const HEADERS = {
  mime: 'x-ugcfs-mime',
  owner: 'x-ugcfs-owner',
  uploadTime: 'x-ugcfs-upload-time',
  replicas: 'x-ugcfs-replicas',
  crc: 'x-ugcfs-crc',
  blockGen: 'x-ugcfs-block-gen',
  blockSize: 'x-ugcfs-block-size',
  /** the UGCFS_ERR_* code of an error answer, so a HEAD (no body) still carries it */
  errorCode: 'x-ugcfs-error-code',
  /** '1' on a PUT/DELETE of a needle sent by verify --repair: applied to this copy only (no
   *  forwarding), a PUT lands even on a sealed or read-only block, never over an existing key */
  repair: 'x-ugcfs-repair',
  /** 'client' on a needle GET: the reader checks the data against `x-ugcfs-crc` itself, so the
   *  data server skips its own pass over the data (dataserver/README.md, "Reads") */
  verify: 'x-ugcfs-verify',
  /** the name server's cluster id, on a UGCFS_ERR_FOREIGN_CLUSTER answer to a heartbeat */
  cluster: 'x-ugcfs-cluster',
  /** the epoch of the leading name server, on every command it sends a data server; a data
   *  server refuses one lower than the highest it has seen (UGCFS_ERR_STALE_EPOCH) */
  epoch: 'x-ugcfs-epoch',
} as const;
