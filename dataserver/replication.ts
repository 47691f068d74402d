// Primary-side replication: the primary appends locally while it forwards the same bytes
// (same upload time, mime and owner) to every peer replica in parallel. A write is
// acknowledged only when all of them have it; otherwise every copy that did land is
// tombstoned, so a failed write never stays visible anywhere.
import { UgcfsError, isUgcfsError } from '../src/errors.ts';
import { putBytes } from '../src/cluster-client.ts';
import { callRaw, expectOk } from '../src/http-client.ts';
import { SECRET_HEADER } from '../src/secret.ts';
import type { Logger } from '../src/log.ts';
import type { Metrics } from '../src/metrics.ts';
import { HEADERS, type WriteResult } from '../src/protocol.ts';
import type { BlockStore, PutResult } from './block-store.ts';
import type { NeedleMeta } from './needle.ts';

export interface ReplicationContext {
  store: BlockStore;
  secret: string;
  metrics: Metrics;
  log: Logger;
  timeoutMs?: number;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

function settle<T>(p: Promise<T>): Promise<Outcome<T>> {
  return p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

function needleUrl(base: string, fid: string): string {
  return `${base}/needles/${fid}`;
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
  const headers: Record<string, string> = {
    'content-type': 'application/octet-stream',
    [HEADERS.mime]: w.meta.mime,
    [HEADERS.owner]: w.meta.owner,
    [HEADERS.uploadTime]: String(w.meta.uploadTime),
    [HEADERS.crc]: String(w.crc),
  };
  // The replicas log under the primary's request id, so one write reads as one story.
  if (w.requestId !== undefined) headers['x-request-id'] = w.requestId;
  if (ctx.secret) headers[SECRET_HEADER] = ctx.secret;
  const [local, ...remote] = await Promise.all([
    settle(ctx.store.put(w.block, w.meta, w.data, w.crc)),
    ...w.replicas.map((url) =>
      settle(putBytes(needleUrl(url, w.fid), w.data, headers, ctx.timeoutMs ?? 10_000).then(expectOk)),
    ),
  ]);
  if (w.replicas.length > 0) ctx.metrics.replicationDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  // Only copies this request created may be undone: a replica that already held the very
  // same record (a retried write) holds a copy some earlier request was acknowledged for.
  const landed = w.replicas.filter((_, i) => {
    const r = remote[i]!;
    return r.ok && !wasExisting(r.value.body);
  });
  const failed = w.replicas.map((url, i) => ({ url, r: remote[i]! })).filter((x) => !x.r.ok);

  if (!local!.ok) {
    await undoRemote(ctx, w.fid, landed);
    throw local!.error;
  }
  if (failed.length > 0) {
    ctx.metrics.replicationFailures.inc(failed.length);
    if (!local!.value.existed) {
      await ctx.store.delete(w.block, w.meta.key, w.meta.cookie).catch((err: unknown) => ctx.log.error({ err, fid: w.fid }, 'could not tombstone a write that failed to replicate'));
    }
    await undoRemote(ctx, w.fid, landed);
    const why = failed.map((x) => describe(x.url, (x.r as { error: unknown }).error)).join('; ');
    ctx.log.warn({ fid: w.fid, why }, 'write not acknowledged by every replica');
    throw new UgcfsError('UGCFS_ERR_REPLICATION', `not every replica stored the write: ${why}`);
  }
  return local!.value;
}

async function undoRemote(ctx: ReplicationContext, fid: string, urls: string[]): Promise<void> {
  await Promise.all(
    urls.map((url) =>
      callRaw(needleUrl(url, fid), { method: 'DELETE', secret: ctx.secret, timeoutMs: ctx.timeoutMs }).catch((err: unknown) =>
        ctx.log.warn({ err: String(err), fid, url }, 'could not undo a replica of a failed write'),
      ),
    ),
  );
}

/** Deletes locally and on every peer; a peer that never had it counts as done. 404 only if no one had it. */
export async function replicatedDelete(ctx: ReplicationContext, d: { fid: string; block: number; key: bigint; cookie: number; replicas: string[] }): Promise<void> {
  const [local, ...remote] = await Promise.all([
    settle(ctx.store.delete(d.block, d.key, d.cookie)),
    ...d.replicas.map((url) => settle(callRaw(needleUrl(url, d.fid), { method: 'DELETE', secret: ctx.secret, timeoutMs: ctx.timeoutMs }))),
  ]);
  if (!local!.ok && !isUgcfsError(local!.error, 'UGCFS_ERR_NOT_FOUND')) throw local!.error;
  let anyDeleted = local!.ok;
  const failed: string[] = [];
  d.replicas.forEach((url, i) => {
    const r = remote[i]!;
    if (!r.ok) return void failed.push(describe(url, r.error));
    if (r.value.status === 404) return;
    try {
      expectOk(r.value);
      anyDeleted = true;
    } catch (err) {
      failed.push(describe(url, err));
    }
  });
  if (failed.length > 0) {
    ctx.metrics.replicationFailures.inc(failed.length);
    throw new UgcfsError('UGCFS_ERR_REPLICATION', `not every replica applied the delete: ${failed.join('; ')}`);
  }
  if (!anyDeleted) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
}

function wasExisting(body: Buffer): boolean {
  try {
    return (JSON.parse(body.toString('utf8')) as Partial<WriteResult>).existed === true;
  } catch {
    return false;
  }
}
