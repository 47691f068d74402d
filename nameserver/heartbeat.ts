// Heartbeats: registration, liveness, block reports, and the commands sent back. Reports
// are checked against what the name server allocated: a block it never allocated is
// refused (logged, not added), and a copy on a server outside the block's replica set is
// not counted; once the block has its full replica count elsewhere, that copy is extra
// and the server is told to delete it.
import { UgcfsError } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import type { BlockReport, DsCommand, Heartbeat, HeartbeatReply } from '../src/protocol.ts';
import type { BlockMap, BlockRecord } from './block-map.ts';
import type { DeleteFeed } from './delete-feed.ts';
import type { PendingDeletes } from './pending-deletes.ts';
import type { Registry } from './registry.ts';
import type { PersistedSequence } from './sequence.ts';

const ID = /^[A-Za-z0-9_.-]{1,128}$/;

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
  const rack = b.rack ?? '';
  if (typeof rack !== 'string' || rack.length > 64) throw bad('rack must be a string of at most 64 characters');
  if (!Array.isArray(b.blocks)) throw bad('blocks must be an array');
  const blocks: BlockReport[] = b.blocks.map((x: unknown, i: number) => {
    if (!x || typeof x !== 'object') throw bad(`blocks[${i}] must be an object`);
    const r = x as Record<string, unknown>;
    if (typeof r.id !== 'number' || !Number.isInteger(r.id) || r.id < 0 || r.id > 0xffffffff) throw bad(`blocks[${i}].id must be a block id`);
    return {
      id: r.id,
      size: count(r.size, `blocks[${i}].size`),
      liveCount: count(r.liveCount ?? 0, `blocks[${i}].liveCount`),
      liveBytes: count(r.liveBytes ?? 0, `blocks[${i}].liveBytes`),
      deletedBytes: count(r.deletedBytes ?? 0, `blocks[${i}].deletedBytes`),
      sealed: r.sealed === true,
      readonly: r.readonly === true,
      gen: count(r.gen ?? 0, `blocks[${i}].gen`),
    };
  });
  return {
    id: b.id,
    url: b.url.replace(/\/+$/, ''),
    rack,
    freeBytes: count(b.freeBytes, 'freeBytes'),
    usedBytes: count(b.usedBytes, 'usedBytes'),
    blockSize: count(b.blockSize ?? 0, 'blockSize'),
    blocks,
  };
}

export interface HeartbeatDeps {
  blocks: BlockMap;
  registry: Registry;
  pending: PendingDeletes;
  log: Logger;
  /** block ids found on data servers are never allocated again */
  blockIds: PersistedSequence;
  /** adopt unknown reported blocks instead of refusing them (--adopt-blocks) */
  adopt: boolean;
  /** the state held no block when this process started (new cluster, or a lost state dir) */
  freshState: boolean;
  /** replica count for adopted blocks */
  replicas: number;
  /** deletes recorded by this state, replayed to servers that join an adopted block late */
  deleteFeed: Pick<DeleteFeed, 'fidsInBlock'>;
}

export class HeartbeatHandler {
  /** (ds, block) pairs already logged as refused, so a bad report logs once, not every beat */
  private readonly refusedLogged = new Set<string>();
  /** blocks adopted by this process: every server reporting them joins the replica set (up to the count) */
  private readonly adopted = new Set<number>();

  constructor(private readonly d: HeartbeatDeps) {}

  async handle(body: unknown, now = Date.now()): Promise<HeartbeatReply> {
    const hb = parseHeartbeat(body);
    const commands: DsCommand[] = [];
    const reports = new Map<number, BlockReport>();
    // A fresh (or recovering) state must not reuse an id that exists on a data server. A
    // state that knows its blocks ignores such claims: a bogus id must not eat the id space.
    const highest = hb.blocks.reduce((m, b) => Math.max(m, b.id), -1);
    if (highest >= 0 && (this.d.adopt || this.d.freshState)) await this.d.blockIds.skipThrough(BigInt(highest));
    for (const rep of hb.blocks) {
      let rec = this.d.blocks.get(rep.id);
      if (!rec && this.d.adopt) rec = await this.adoptBlock(hb.id, rep.id, now);
      if (rec && this.adopted.has(rec.id) && !rec.replicas.includes(hb.id) && rec.replicas.length < rec.replication) {
        // Deletes made since adoption reached only the servers known then: this copy owes
        // them, and serves no reads until they are replayed to it.
        for (const fid of this.d.deleteFeed.fidsInBlock(rec.id)) await this.d.pending.add(hb.id, fid, rec.id);
        await this.d.blocks.addReplica(rec.id, hb.id);
        rec = this.d.blocks.get(rec.id)!;
      }
      if (!rec) {
        this.refuse(hb.id, rep.id);
        continue;
      }
      if (rec.state === 'abandoned') {
        commands.push({ kind: 'delete-block', block: rep.id, reason: 'block creation was abandoned' });
        continue;
      }
      reports.set(rep.id, rep);
    }
    const { entry, returned } = await this.d.registry.beat(hb, reports, now);
    if (returned) this.d.log.info({ ds: entry.id, url: entry.url, rack: entry.rack, blocks: reports.size }, 'data server is alive');

    for (const rep of reports.values()) {
      const rec = this.d.blocks.get(rep.id)!;
      if (this.d.blocks.busyReason(rec.id)) continue;
      if (!rec.replicas.includes(entry.id)) {
        const elsewhere = this.d.blocks.liveHolders(rec, now).length;
        if (elsewhere >= rec.replication) {
          commands.push({ kind: 'delete-block', block: rec.id, reason: 'extra copy: the block has its full replica count elsewhere' });
          await this.d.pending.forgetBlock(entry.id, rec.id);
          this.d.log.info({ ds: entry.id, block: rec.id }, 'removing an extra copy');
        }
        continue;
      }
      if (rep.sealed && rec.state === 'writable') await this.d.blocks.setState(rec.id, 'sealed');
      if (rec.state !== 'writable' && !rep.readonly && !rep.sealed) commands.push({ kind: 'readonly', block: rec.id, readonly: true });
    }
    return { ok: true, commands };
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
