// The heartbeat between a data server and each name server (POST NS_ROUTES.heartbeat): its
// body and reply, the block reports it carries, the digest both sides keep of a data
// server's whole block set, and the size of a full report's pages.
//
// The digest is the XOR of a 64-bit hash of every block's report (all its fields), so either
// side updates it per change in O(1): XOR the old report's hash out, the new one's in. Equal
// digests and counts mean the name server's picture of the data server is its own; a
// mismatch makes the name server ask for a full report (docs/NAMESERVER.md, "Block reports").
import type { NameserverRole } from './protocol.ts';

export interface BlockReport {
  id: number;
  /** bytes in the block file */
  size: number;
  /** live records and their bytes */
  liveCount: number;
  liveBytes: number;
  /** bytes of deleted records and tombstones, reclaimable by compaction */
  deletedBytes: number;
  sealed: boolean;
  readonly: boolean;
  /** compaction generation */
  gen: number;
}

export interface Heartbeat {
  id: string;
  url: string;
  rack: string;
  freeBytes: number;
  usedBytes: number;
  blockSize: number;
  /** a whole block report in one message (simple senders; a data server sends `report` instead) */
  blocks?: BlockReport[];
  /** the block report as a full report (paged) or a change since the last acknowledged message (src/wire/heartbeat.ts) */
  report?: ReportMessage;
  /** the cluster id stored in `<data>/cluster`; absent until a name server first handed one out */
  cluster?: string;
  /** the highest lease ends this data server has seen, or derived from the blocks it holds (docs/NAMESERVER.md, "Cluster identity") */
  highWater?: { blockIds: HighWaterMark; keys: HighWaterMark };
  /** what its quarantine/ holds (dataserver/README.md, "Quarantine") */
  quarantine?: QuarantineSummary;
}

export interface QuarantineSummary {
  files: number;
  bytes: number;
}

/** One of the name server's sequences (block ids, file keys) as a data server remembers it. */
export interface HighWaterMark {
  /** decimal (keys are 56-bit): every number below it may have been handed out */
  upTo: string;
  /** the name-server state (HeartbeatReply.state) whose lease this was; '' when derived from the blocks held */
  state: string;
}

/** What the name server asks a data server to do, carried on the heartbeat reply. */
export type DsCommand =
  | { kind: 'delete-block'; block: number; reason: string }
  | { kind: 'readonly'; block: number; readonly: boolean };

export interface HeartbeatReply {
  ok: true;
  commands: DsCommand[];
  /** the name server's cluster id; a data server without one stores it before acting on the
   *  commands. Absent only while an --adopt-blocks start is still learning it from the data servers. */
  cluster?: string;
  /** the id of this name-server state: a state made after a loss has a new one, so a data server can tell whose lease a mark is */
  state: string;
  /** the name server's Date.now() when it answered (tombstone expiry follows it, dataserver/cluster-clock.ts) */
  now: number;
  /** the persisted lease ends (decimal): no block id or file key at or above them was handed out */
  leasedUpTo: { blockIds: string; keys: string };
  /** the answering name server's role; a data server takes commands, time and marks only from a leader */
  role?: NameserverRole;
  /** the leader's epoch (see HEADERS.epoch); a data server persists the highest seen */
  epoch?: number;
  /** the answer to the heartbeat's `report` */
  report?: ReportAck;
}

/** Blocks per page of a full report: ~2.6 MiB of JSON, well under the 16 MiB body limit. */
export const REPORT_PAGE_BLOCKS = 20_000;

/** A 64-bit value as two unsigned 32-bit halves (no BigInt on the hot path). */
export interface Hash64 {
  hi: number;
  lo: number;
}

/** The digest of no blocks. */
export const EMPTY_DIGEST = '0000000000000000';

function mix(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number, n: number): number {
  h ^= n;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Words of a non-negative number below 2^53: low 32 bits and the rest. */
const low = (n: number) => n >>> 0;
const high = (n: number) => Math.floor(n / 0x1_0000_0000) >>> 0;

/** The hash of one block's report (every field counts). */
export function reportHash(r: BlockReport): Hash64 {
  // Two independent 32-bit lanes over the same ten words, unrolled (this runs per block).
  const w0 = r.id >>> 0;
  const w1 = low(r.size);
  const w2 = high(r.size);
  const w3 = r.liveCount >>> 0;
  const w4 = low(r.liveBytes);
  const w5 = high(r.liveBytes);
  const w6 = low(r.deletedBytes);
  const w7 = high(r.deletedBytes);
  const w8 = r.gen >>> 0;
  const w9 = (r.sealed ? 1 : 0) | (r.readonly ? 2 : 0);
  const x = 0x2545f491;
  const a = mix(mix(mix(mix(mix(mix(mix(mix(mix(mix(0x9747b28c, w0), w1), w2), w3), w4), w5), w6), w7), w8), w9);
  const b = mix(mix(mix(mix(mix(mix(mix(mix(mix(mix(0x5bd1e995, w0 ^ x), w1 ^ x), w2 ^ x), w3 ^ x), w4 ^ x), w5 ^ x), w6 ^ x), w7 ^ x), w8 ^ x), w9 ^ x);
  return { hi: finish(a, WORDS), lo: finish(b, WORDS * 7) };
}

/** Words hashed per report. */
const WORDS = 10;

/** A running digest of a set of block reports. */
export class ReportDigest {
  hi = 0;
  lo = 0;
  count = 0;

  add(h: Hash64): void {
    this.hi = (this.hi ^ h.hi) >>> 0;
    this.lo = (this.lo ^ h.lo) >>> 0;
    this.count++;
  }

  remove(h: Hash64): void {
    this.hi = (this.hi ^ h.hi) >>> 0;
    this.lo = (this.lo ^ h.lo) >>> 0;
    this.count--;
  }

  clear(): void {
    this.hi = 0;
    this.lo = 0;
    this.count = 0;
  }

  toString(): string {
    return this.hi.toString(16).padStart(8, '0') + this.lo.toString(16).padStart(8, '0');
  }
}

/** The digest of a whole list (tests, and a sender without a running digest). */
export function digestOf(reports: readonly BlockReport[]): string {
  const d = new ReportDigest();
  for (const r of reports) d.add(reportHash(r));
  return d.toString();
}

/**
 * One message of a data server's block-report session with one name server
 * (docs/NAMESERVER.md, "Block reports"). A session starts with
 * a full report, sent as pages numbered by consecutive `seq`; later messages are deltas, each
 * carrying every block changed since the last message the name server acknowledged.
 */
export interface ReportMessage {
  /** chosen by the data server for each full report; deltas name the session they continue */
  session: string;
  /** one more than the previous message of the session (first page: 1) */
  seq: number;
  kind: 'full' | 'delta';
  /** full: this page's blocks; delta: blocks added or changed */
  blocks: BlockReport[];
  /** delta: ids of blocks no longer held */
  removed?: number[];
  /** full: true on the last page */
  last?: boolean;
  /** after this message: how many blocks the data server holds, and their digest (16 hex) */
  count: number;
  digest: string;
}

/** The name server's answer to a ReportMessage, on the heartbeat reply. */
export interface ReportAck {
  session: string;
  /** the highest seq of the session applied (0: none) */
  ack: number;
  /** a full report is needed: unknown session, a gap in a full report's pages, or a digest mismatch */
  full?: boolean;
  /** with `full`: not now, other servers have the turns; ask again at the next beat */
  wait?: boolean;
}
