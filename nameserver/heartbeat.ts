// Heartbeats: registration, liveness, block reports, and the commands sent back. A data
// server must first be of this cluster (cluster-id.ts): one with another cluster's id, or
// holding blocks without any id while this state has allocated nothing, is FOREIGN — 409
// UGCFS_ERR_FOREIGN_CLUSTER, nothing registered or counted, no command, listed in status.
// A member's high-water marks move the id sequences past everything an earlier state may
// have issued. Reports are checked against what the name server allocated: a block it
// never allocated is refused (logged, not added), and a copy on a server outside the
// block's replica set is not counted; once the block has its full replica count
// elsewhere, that copy is extra and the server is told to remove it (the data server
// quarantines it). Every reply carries the cluster id, this state's id, the name server's
// time and its persisted lease ends.
import { UgcfsError } from '../src/base/errors.ts';
import { MAX_KEY } from '../src/wire/file-id.ts';
import type { Logger } from '../src/base/log.ts';
import { HEADERS, type BlockReport, type DsCommand, type ForeignDataserverStatus, type Heartbeat, type HeartbeatReply, type HighWaterMark, type ReportAck, type ReportMessage } from '../src/wire/protocol.ts';
import { digestOf } from '../src/wire/heartbeat.ts';
import type { CopyOrders } from './copy-orders.ts';
import type { ReportIntake } from './report-intake.ts';
import type { BlockMap, BlockRecord } from './block-map.ts';
import type { ClusterIdentity } from './cluster-id.ts';
import type { DeleteFeed } from './delete-feed.ts';
import type { PendingDeletes } from './pending-deletes.ts';
import type { Leadership } from './leadership.ts';
import type { Registry } from './registry.ts';
import type { PersistedSequence } from './sequence.ts';

const ID = /^[A-Za-z0-9_.-]{1,128}$/;
const CLUSTER = /^[A-Za-z0-9_.-]{1,64}$/;
const MAX_BLOCK_ID_PLUS_1 = 0x1_0000_0000n;

function bad(why: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_REQUEST', `bad heartbeat: ${why}`);
}

function count(v: unknown, name: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw bad(`${name} must be a non-negative number`);
  return v;
}

/** Validates a heartbeat body field by field; nothing unchecked reaches the registry. */
export function parseHeartbeat(body: unknown): Heartbeat {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('body must be a JSON object');
  const b = body as Record<string, unknown>;
  if (typeof b.id !== 'string' || !ID.test(b.id)) throw bad('id must be 1-128 characters of A-Z a-z 0-9 _ . -');
  if (typeof b.url !== 'string') throw bad('url must be a string');
  try {
    const u = new URL(b.url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
  } catch {
    throw bad('url must be an http(s) URL');
  }
  const cluster = b.cluster;
  if (cluster !== undefined && (typeof cluster !== 'string' || !CLUSTER.test(cluster))) throw bad('cluster must be 1-64 characters of A-Z a-z 0-9 _ . -');
  let highWater: Heartbeat['highWater'];
  if (b.highWater !== undefined) {
    const hw = b.highWater as Record<string, unknown> | null;
    if (!hw || typeof hw !== 'object' || Array.isArray(hw)) throw bad('highWater must be an object');
    highWater = { blockIds: mark(hw.blockIds, 'highWater.blockIds', MAX_BLOCK_ID_PLUS_1), keys: mark(hw.keys, 'highWater.keys', MAX_KEY + 1n) };
  }
  const rack = b.rack ?? '';
  if (typeof rack !== 'string' || rack.length > 64) throw bad('rack must be a string of at most 64 characters');
  if (b.blocks === undefined && b.report === undefined) throw bad('blocks (an array) or report is required');
  const blocks = b.blocks === undefined ? undefined : reportList(b.blocks, 'blocks');
  const report = b.report === undefined ? undefined : reportMessage(b.report);
  return {
    id: b.id,
    url: b.url.replace(/\/+$/, ''),
    rack,
    freeBytes: count(b.freeBytes, 'freeBytes'),
    usedBytes: count(b.usedBytes, 'usedBytes'),
    blockSize: count(b.blockSize ?? 0, 'blockSize'),
    ...(blocks ? { blocks } : {}),
    ...(report ? { report } : {}),
    ...(cluster !== undefined ? { cluster } : {}),
    ...(highWater ? { highWater } : {}),
    ...(b.quarantine !== undefined ? { quarantine: quarantineSummary(b.quarantine) } : {}),
  };
}

const SESSION = /^[A-Za-z0-9_-]{0,64}$/;

const num = (v: unknown): v is number => typeof v === 'number' && v >= 0 && v <= Number.MAX_SAFE_INTEGER;

/** Checks a list of block reports, normalising each in place (a full report's page holds 20,000). */
function reportList(v: unknown, name: string): BlockReport[] {
  if (!Array.isArray(v)) throw bad(`${name} must be an array`);
  for (let i = 0; i < v.length; i++) {
    const r = v[i] as Record<string, unknown> | null;
    if (!r || typeof r !== 'object' || Array.isArray(r)) throw bad(`${name}[${i}] must be an object`);
    if (typeof r.id !== 'number' || !Number.isInteger(r.id) || r.id < 0 || r.id > 0xffffffff) throw bad(`${name}[${i}].id must be a block id`);
    // The usual report passes these checks as it is; only a report that fails one pays for the message.
    if (!num(r.size)) count(r.size, `${name}[${i}].size`);
    r.liveCount = num(r.liveCount) ? r.liveCount : count(r.liveCount ?? 0, `${name}[${i}].liveCount`);
    r.liveBytes = num(r.liveBytes) ? r.liveBytes : count(r.liveBytes ?? 0, `${name}[${i}].liveBytes`);
    r.deletedBytes = num(r.deletedBytes) ? r.deletedBytes : count(r.deletedBytes ?? 0, `${name}[${i}].deletedBytes`);
    r.gen = num(r.gen) ? r.gen : count(r.gen ?? 0, `${name}[${i}].gen`);
    r.sealed = r.sealed === true;
    r.readonly = r.readonly === true;
  }
  return v as BlockReport[];
}

function reportMessage(v: unknown): ReportMessage {
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw bad('report must be an object');
  const m = v as Record<string, unknown>;
  if (typeof m.session !== 'string' || !SESSION.test(m.session)) throw bad('report.session must be up to 64 characters of A-Z a-z 0-9 _ -');
  if (typeof m.seq !== 'number' || !Number.isSafeInteger(m.seq) || m.seq < 1) throw bad('report.seq must be a positive integer');
  if (m.kind !== 'full' && m.kind !== 'delta') throw bad("report.kind must be 'full' or 'delta'");
  if (typeof m.digest !== 'string' || !/^[0-9a-f]{16}$/.test(m.digest)) throw bad('report.digest must be 16 lowercase hex digits');
  let removed: number[] | undefined;
  if (m.removed !== undefined) {
    if (!Array.isArray(m.removed) || !m.removed.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) throw bad('report.removed must be an array of block ids');
    removed = m.removed as number[];
  }
  return {
    session: m.session,
    seq: m.seq,
    kind: m.kind,
    blocks: reportList(m.blocks, 'report.blocks'),
    ...(removed ? { removed } : {}),
    ...(m.last === true ? { last: true } : {}),
    count: count(m.count, 'report.count'),
    digest: m.digest,
  };
}

/** How many blocks a heartbeat says its server holds. */
export function heldCount(hb: Heartbeat): number {
  return hb.report ? hb.report.count : (hb.blocks?.length ?? 0);
}

/** A heartbeat's report as a message: a bare `blocks` list is one whole full report. */
function messageOf(hb: Heartbeat): ReportMessage {
  if (hb.report) return hb.report;
  const blocks = hb.blocks ?? [];
  return { session: '', seq: 1, kind: 'full', blocks, last: true, count: blocks.length, digest: digestOf(blocks) };
}

function quarantineSummary(v: unknown): { files: number; bytes: number } {
  if (!v || typeof v !== 'object') throw bad('quarantine must be {files, bytes}');
  const q = v as Record<string, unknown>;
  return { files: count(q.files, 'quarantine.files'), bytes: count(q.bytes, 'quarantine.bytes') };
}

function mark(v: unknown, name: string, max: bigint): HighWaterMark {
  if (!v || typeof v !== 'object') throw bad(`${name} must be {upTo, state}`);
  const m = v as Record<string, unknown>;
  if (typeof m.upTo !== 'string' || !/^\d{1,20}$/.test(m.upTo) || BigInt(m.upTo) > max) throw bad(`${name}.upTo must be a decimal number up to ${max}`);
  if (typeof m.state !== 'string' || (m.state !== '' && !CLUSTER.test(m.state))) throw bad(`${name}.state must be a state id or ''`);
  return { upTo: m.upTo, state: m.state };
}

/**
 * Data servers that send heartbeats here but are not of this cluster (status lists them).
 * Keyed by id and URL: a foreign server may carry the id of a member of this cluster.
 */
export class ForeignServers {
  private readonly seen = new Map<string, ForeignDataserverStatus & { lastSeen: number }>();
  /** how long one that stopped beating stays listed */
  static readonly KEEP_MS = 3_600_000;
  /** silent this long, an entry whose id a member now uses is taken for that member's past */
  static readonly STALE_MS = 10_000;

  /** Records a refusal; true when it is new (or its reason changed), so it is logged once. */
  note(hb: Heartbeat, reason: string, now: number): boolean {
    const k = `${hb.id} ${hb.url}`;
    const before = this.seen.get(k);
    this.seen.set(k, { id: hb.id, url: hb.url, rack: hb.rack, ...(hb.cluster !== undefined ? { cluster: hb.cluster } : {}), reason, blocks: heldCount(hb), usedBytes: hb.usedBytes, freeBytes: hb.freeBytes, lastSeenMs: 0, lastSeen: now });
    return before?.reason !== reason;
  }

  /**
   * A server accepted as a member is no longer listed; an entry of its id at another URL
   * that has stopped beating (the same server before a restart on a new port) goes too.
   */
  forget(id: string, url: string, now: number): void {
    if (this.seen.size === 0) return;
    this.seen.delete(`${id} ${url}`);
    for (const [k, e] of this.seen) if (e.id === id && now - e.lastSeen > ForeignServers.STALE_MS) this.seen.delete(k);
  }

  list(now = Date.now()): ForeignDataserverStatus[] {
    const out: ForeignDataserverStatus[] = [];
    for (const [k, e] of this.seen) {
      if (now - e.lastSeen > ForeignServers.KEEP_MS) {
        this.seen.delete(k);
        continue;
      }
      const { lastSeen, ...rest } = e;
      out.push({ ...rest, lastSeenMs: Math.max(0, now - lastSeen) });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : a.url < b.url ? -1 : a.url > b.url ? 1 : 0));
  }
}

export interface HeartbeatDeps {
  blocks: BlockMap;
  registry: Registry;
  pending: PendingDeletes;
  log: Logger;
  /** block ids found on data servers are never allocated again */
  blockIds: PersistedSequence;
  /** file keys; moved past a member's high-water mark */
  keys: PersistedSequence;
  identity: ClusterIdentity;
  foreign: ForeignServers;
  /** adopt unknown reported blocks instead of refusing them (--adopt-blocks) */
  adopt: boolean;
  /** the state held no block when this process started (new cluster, or a lost state dir) */
  freshState: boolean;
  /** replica count for adopted blocks */
  replicas: number;
  /** deletes recorded by this state, replayed to servers that join an adopted block late */
  deleteFeed: Pick<DeleteFeed, 'fidsInBlock'>;
  /** who leads: a standby only records liveness and reports, changes nothing, sends no command */
  leadership: Pick<Leadership, 'isLeader' | 'epoch'>;
  /** applies block-report messages */
  intake: ReportIntake;
  /** orders about copies, decided on change */
  orders: CopyOrders;
}

export class HeartbeatHandler {
  /** (ds, block) pairs already logged as refused, so a bad report logs once, not every beat */
  private readonly refusedLogged = new Set<string>();
  /** blocks adopted by this process: every server reporting them joins the replica set (up to the count) */
  private readonly adopted = new Set<number>();

  constructor(private readonly d: HeartbeatDeps) {}

  async handle(body: unknown, now = Date.now()): Promise<HeartbeatReply> {
    const hb = parseHeartbeat(body);
    if (!this.d.leadership.isLeader()) return this.standby(hb, now);
    await this.d.identity.tick(now);
    await this.admit(hb, now);
    await this.raiseSequences(hb);
    const m = messageOf(hb);
    // A fresh (or recovering) state must not reuse an id that exists on a data server. A
    // state that knows its blocks ignores such claims: a bogus id must not eat the id space.
    const highest = m.blocks.reduce((x, b) => Math.max(x, b.id), -1);
    if (highest >= 0 && (this.d.adopt || this.d.freshState)) await this.d.blockIds.skipThrough(BigInt(highest));
    const { entry, returned } = await this.d.registry.beat(hb, now);
    const { ack, changed } = await this.d.intake.apply(hb.id, m, (rep) => this.admitCopy(hb.id, rep, now));
    if (returned) this.d.log.info({ ds: entry.id, url: entry.url, rack: entry.rack, blocks: heldCount(hb) }, 'data server is alive');
    for (const rep of changed) if (this.d.orders.mayOrder(rep, entry.id)) await this.d.orders.evaluate(rep.id, entry.id, now);
    return this.reply(this.d.orders.take(entry.id), 'leader', hb.report ? ack : undefined);
  }

  /** Whether a reported block is kept as this server's copy (adopting it first under --adopt-blocks). */
  private admitCopy(dsId: string, rep: BlockReport, now: number): Promise<boolean> | boolean {
    // The common case, read from the columns: a block we allocated, not abandoned, not adopted here.
    const state = this.d.blocks.stateOfRecord(rep.id);
    if (state !== undefined && state !== 'abandoned' && !this.adopted.has(rep.id)) return true;
    return this.admitRare(dsId, rep, now);
  }

  private async admitRare(dsId: string, rep: BlockReport, now: number): Promise<boolean> {
    let rec = this.d.blocks.get(rep.id);
    if (!rec && this.d.adopt) rec = await this.adoptBlock(dsId, rep.id, now);
    if (rec && this.adopted.has(rec.id) && !rec.replicas.includes(dsId) && rec.replicas.length < rec.replication) {
      // Deletes made since adoption reached only the servers known then: this copy owes
      // them, and serves no reads until they are replayed to it.
      for (const fid of this.d.deleteFeed.fidsInBlock(rec.id)) await this.d.pending.add(dsId, fid, rec.id);
      await this.d.blocks.addReplica(rec.id, dsId);
      rec = this.d.blocks.get(rec.id)!;
    }
    // Of an abandoned block, only a server the creation was sent to holds our (empty) copy
    // (it is told to drop it); on any other the id was taken already (see Allocator: a 409
    // on create) and the block is not ours.
    if (!rec || (rec.state === 'abandoned' && !rec.replicas.includes(dsId))) {
      this.refuse(dsId, rep.id);
      return false;
    }
    return true;
  }

  /**
   * A standby keeps a warm picture (liveness, space, reports of allocated blocks) so that it
   * can lead at once, and changes nothing: no registration persisted, no adoption, no
   * sequence moved, no command. Its reply says it is a standby; the data server takes
   * nothing from it.
   */
  private async standby(hb: Heartbeat, now: number): Promise<HeartbeatReply> {
    if (hb.cluster !== undefined && this.d.identity.clusterId !== undefined && hb.cluster !== this.d.identity.clusterId) {
      throw this.foreign(hb, `it belongs to cluster ${hb.cluster}, this name server to ${this.d.identity.clusterId}`, now);
    }
    await this.d.registry.beat(hb, now, false);
    const { ack } = await this.d.intake.apply(hb.id, messageOf(hb), (rep) => {
      const state = this.d.blocks.stateOfRecord(rep.id);
      return state !== undefined && (state !== 'abandoned' || this.d.blocks.isReplica(rep.id, hb.id));
    });
    return this.reply([], 'standby', hb.report ? ack : undefined);
  }

  /** The reply every member gets; `leasedUpTo` is read last, after any skip this beat caused. */
  private reply(commands: DsCommand[], role: 'leader' | 'standby' = 'leader', report?: ReportAck): HeartbeatReply {
    const cluster = this.d.identity.clusterId;
    return {
      ok: true,
      commands,
      ...(cluster !== undefined ? { cluster } : {}),
      state: this.d.identity.stateId,
      now: Date.now(),
      leasedUpTo: { blockIds: this.d.blockIds.leasedUpTo.toString(), keys: this.d.keys.leasedUpTo.toString() },
      role,
      epoch: this.d.leadership.epoch(),
      ...(report ? { report } : {}),
    };
  }

  /** Throws UGCFS_ERR_FOREIGN_CLUSTER unless the data server is of this cluster (or may join it). */
  private async admit(hb: Heartbeat, now: number): Promise<void> {
    const identity = this.d.identity;
    if (hb.cluster !== undefined) {
      if (identity.isLearning) await identity.learn(hb.cluster, hb.id);
      if (hb.cluster === identity.clusterId) {
        this.d.foreign.forget(hb.id, hb.url, now);
        return;
      }
      throw this.foreign(hb, `it belongs to cluster ${hb.cluster}, this name server to ${identity.clusterId ?? '(none yet)'}`, now);
    }
    // No id: a new data server, or one from before identities. One that holds blocks while
    // this state has allocated nothing is most likely a survivor of a lost state: joining
    // would make its blocks someone else's. --adopt-blocks is the way to take them in.
    if (heldCount(hb) > 0 && !this.d.adopt && this.d.blocks.size === 0) {
      throw this.foreign(hb, `it holds ${heldCount(hb)} blocks but no cluster id, and this name-server state has allocated no block (a lost state?): restart the name server with --adopt-blocks to adopt them`, now);
    }
    identity.noteUnidentified();
    this.d.foreign.forget(hb.id, hb.url, now);
  }

  private foreign(hb: Heartbeat, reason: string, now: number): UgcfsError {
    this.d.registry.expire(hb.id, hb.url, now);
    this.d.intake.drop(hb.id);
    if (this.d.foreign.note(hb, reason, now)) {
      this.d.log.warn({ ds: hb.id, url: hb.url, dsCluster: hb.cluster, cluster: this.d.identity.clusterId, blocks: heldCount(hb) }, `refused a data server of another cluster: ${reason}; nothing it reports is used, it gets no command`);
    }
    const cluster = this.d.identity.clusterId;
    return new UgcfsError('UGCFS_ERR_FOREIGN_CLUSTER', `data server ${hb.id} is refused: ${reason}`, cluster !== undefined ? { headers: { [HEADERS.cluster]: cluster } } : undefined);
  }

  /**
   * A member's marks say up to where an id may have been handed out, by whatever state
   * leased it; any other state's mark moves the sequence past it, persisted first. A mark
   * of this very state's lease needs nothing (every id of it not issued is ours to issue,
   * and skipping it on every beat would burn the lease) — unless it is beyond our own
   * persisted end, which only a state restored from an older backup can see.
   */
  private async raiseSequences(hb: Heartbeat): Promise<void> {
    const hw = hb.highWater;
    if (!hw) return;
    for (const [seq, m] of [[this.d.blockIds, hw.blockIds], [this.d.keys, hw.keys]] as const) {
      const upTo = BigInt(m.upTo);
      if (m.state === this.d.identity.stateId && upTo <= seq.leasedUpTo) continue;
      if (upTo > 0n) await seq.skipThrough(upTo - 1n);
    }
  }

  /** Recovery: a block nobody recorded becomes a sealed block held by whoever reports it. */
  private async adoptBlock(dsId: string, block: number, now: number): Promise<BlockRecord> {
    const rec: BlockRecord = { id: block, replication: this.d.replicas, state: 'sealed', replicas: [dsId], createdAt: now };
    await this.d.blocks.put(rec);
    this.adopted.add(block);
    this.d.log.warn({ ds: dsId, block }, 'adopted a block this name server had no record of (--adopt-blocks)');
    return rec;
  }

  private refuse(dsId: string, block: number): void {
    const k = `${dsId}/${block}`;
    if (this.refusedLogged.has(k)) return;
    if (this.refusedLogged.size > 10_000) this.refusedLogged.clear();
    this.refusedLogged.add(k);
    this.d.log.warn({ ds: dsId, block }, 'refused a block report: this name server never allocated that block');
  }
}
