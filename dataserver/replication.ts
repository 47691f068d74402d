// Primary-side replication: the primary appends locally while it forwards the same bytes
// (same upload time, mime and owner) to every peer replica in parallel. A write is
// acknowledged only when all of them have it; otherwise every copy that did land is
// tombstoned, so a failed write never stays visible anywhere.
import type { Dispatcher } from 'undici';
import { DataserverClient } from '../src/clients/dataserver-client.ts';
import { UgcfsError, isUgcfsError } from '../src/base/errors.ts';
import { batchItemError, encodeNeedleBatch, type BatchItemResult } from '../src/wire/needle-batch.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { BlockStore, PutResult } from './block-store.ts';
import type { NeedleMeta } from './needle.ts';

export interface ReplicationContext {
  store: BlockStore;
  secret: string;
  metrics: Metrics;
  log: Logger;
  timeoutMs?: number;
  /** the agent of calls to the replicas (--tls-ca) */
  dispatcher?: Dispatcher;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

/** One peer client per replication context (made once per server, reused by every write). */
const peerClients = new WeakMap<ReplicationContext, DataserverClient>();

function peers(ctx: ReplicationContext): DataserverClient {
  let c = peerClients.get(ctx);
  if (!c) peerClients.set(ctx, (c = new DataserverClient({ secret: ctx.secret, dispatcher: ctx.dispatcher, ...(ctx.timeoutMs !== undefined ? { timeoutMs: ctx.timeoutMs } : {}) })));
  return c;
}

function describe(url: string, err: unknown): string {
  const e = err as { code?: string; message?: string };
  return `${url}: ${e.code ?? ''} ${e.message ?? String(err)}`.trim();
}

export async function replicatedPut(
  ctx: ReplicationContext,
  w: { fid: string; block: number; meta: NeedleMeta; data: Buffer; crc: number; replicas: string[]; requestId?: string },
): Promise<PutResult> {
  const started = process.hrtime.bigint();
  const client = peers(ctx);
  // Forwarded copies carry the primary's upload time, and no x-ugcfs-replicas: they go no further.
  const meta = { mime: w.meta.mime, owner: w.meta.owner, uploadTime: w.meta.uploadTime, crc: w.crc, ...(w.requestId !== undefined ? { requestId: w.requestId } : {}) };
  const [local, ...remote] = await Promise.all([
    settle(ctx.store.put(w.block, w.meta, w.data, w.crc)),
    ...w.replicas.map((url) => settle(client.putNeedle(url, w.fid, w.data, meta))),
  ]);
  if (w.replicas.length > 0) ctx.metrics.replicationDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  const copies = w.replicas.map((url, i): PeerCopy => {
    const r = remote[i]!;
    return { url, copy: r.ok ? { ok: true, existed: r.value.existed === true } : r };
  });
  return conclude(ctx, w, local!, copies);
}

/** One write of a batch, checked and ready to store. */
export interface BatchItem {
  fid: string;
  meta: NeedleMeta;
  data: Buffer;
  crc: number;
}

/**
 * replicatedPut for several writes to one block: the local appends join one group commit,
 * and each peer gets one request carrying every record (a needle batch frame), so a batch of
 * N writes costs each peer one HTTP exchange instead of N. Every write still ends on its own,
 * with replicatedPut's rules: acknowledged only where every copy landed, undone elsewhere.
 */
export async function replicatedBatchPut(
  ctx: ReplicationContext,
  w: { block: number; items: BatchItem[]; replicas: string[]; requestId?: string; /** the items already framed, in order */ frame?: Buffer },
): Promise<Outcome<PutResult>[]> {
  const started = process.hrtime.bigint();
  let frame = w.frame;
  if (w.replicas.length > 0 && !frame) {
    frame = Buffer.concat(encodeNeedleBatch(w.items.map((it) => ({ fid: it.fid, mime: it.meta.mime, owner: it.meta.owner, uploadTime: it.meta.uploadTime, crc: it.crc, data: it.data }))));
  }
  const client = peers(ctx);
  const forward = { ...(w.requestId !== undefined ? { requestId: w.requestId } : {}) };
  const [local, remote] = await Promise.all([
    Promise.all(w.items.map((it) => settle(ctx.store.put(w.block, it.meta, it.data, it.crc)))),
    Promise.all(w.replicas.map((url) => settle(client.putNeedleBatch(url, w.block, frame!, w.items.length, { ...forward, who: url })))),
  ]);
  if (w.replicas.length > 0) ctx.metrics.replicationDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  return Promise.all(
    w.items.map((it, i) => {
      const copies = w.replicas.map((url, j): PeerCopy => {
        const r = remote[j]!;
        return { url, copy: r.ok ? itemCopy(r.value[i]!) : r };
      });
      return settle(conclude(ctx, { fid: it.fid, block: w.block, meta: it.meta }, local[i]!, copies));
    }),
  );
}

/** What one peer did with one write. */
type PeerCopy = { url: string; copy: { ok: true; existed: boolean } | { ok: false; error: unknown } };

/**
 * The end of one replicated write, from what each copy did. Only copies this request created
 * may be undone: a replica that already held the very same record (a retried write) holds a
 * copy some earlier request was acknowledged for.
 */
async function conclude(ctx: ReplicationContext, w: { fid: string; block: number; meta: NeedleMeta }, local: Outcome<PutResult>, peers: PeerCopy[]): Promise<PutResult> {
  const landed = peers.filter((p) => p.copy.ok && !p.copy.existed).map((p) => p.url);
  const failed = peers.filter((p) => !p.copy.ok);
  if (!local.ok) {
    await undoRemote(ctx, w.fid, landed);
    throw local.error;
  }
  if (failed.length > 0) {
    ctx.metrics.replicationFailures.inc(failed.length);
    if (!local.value.existed) {
      await ctx.store.delete(w.block, w.meta.key, w.meta.cookie).catch((err: unknown) => ctx.log.error({ err, fid: w.fid }, 'could not tombstone a write that failed to replicate'));
    }
    await undoRemote(ctx, w.fid, landed);
    const why = failed.map((p) => describe(p.url, (p.copy as { error: unknown }).error)).join('; ');
    ctx.log.warn({ fid: w.fid, why }, 'write not acknowledged by every replica');
    throw new UgcfsError('UGCFS_ERR_REPLICATION', `not every replica stored the write: ${why}`);
  }
  return local.value;
}

function itemCopy(r: BatchItemResult): PeerCopy['copy'] {
  if ('error' in r) return { ok: false, error: batchItemError(r) };
  return { ok: true, existed: r.existed === true };
}

async function undoRemote(ctx: ReplicationContext, fid: string, urls: string[]): Promise<void> {
  await Promise.all(
    urls.map((url) =>
      peers(ctx).deleteNeedle(url, fid).catch((err: unknown) =>
        ctx.log.warn({ err: String(err), fid, url }, 'could not undo a replica of a failed write'),
      ),
    ),
  );
}

/** Deletes locally and on every peer; a peer that never had it counts as done. 404 only if no one had it. */
export async function replicatedDelete(ctx: ReplicationContext, d: { fid: string; block: number; key: bigint; cookie: number; replicas: string[] }): Promise<void> {
  const [local, ...remote] = await Promise.all([
    settle(ctx.store.delete(d.block, d.key, d.cookie)),
    ...d.replicas.map((url) => settle(peers(ctx).deleteNeedle(url, d.fid))),
  ]);
  if (!local!.ok && !isUgcfsError(local!.error, 'UGCFS_ERR_NOT_FOUND')) throw local!.error;
  let anyDeleted = local!.ok;
  const failed: string[] = [];
  d.replicas.forEach((url, i) => {
    const r = remote[i]!;
    if (!r.ok) return void failed.push(describe(url, r.error));
    // 'missing': that peer never had it, which is fine
    if (r.value === 'deleted') anyDeleted = true;
  });
  if (failed.length > 0) {
    ctx.metrics.replicationFailures.inc(failed.length);
    throw new UgcfsError('UGCFS_ERR_REPLICATION', `not every replica applied the delete: ${failed.join('; ')}`);
  }
  if (!anyDeleted) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
}
