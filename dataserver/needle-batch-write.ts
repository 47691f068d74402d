// POST /blocks/:id/needles: several writes to one block in one request (a needle batch frame,
// src/wire/needle-batch.ts). The client coalesces concurrent writes to the same primary and block
// into one; the primary forwards them to each replica the same way. Every record is checked
// and ends on its own — a bad record is refused, the others still land — with exactly the
// answers a PUT of it alone would get.
import type { IncomingHttpHeaders } from 'node:http';
import { UgcfsError, isUgcfsError } from '../src/base/errors.ts';
import { decodeFid } from '../src/wire/file-id.ts';
import { checkedCrc, decodeNeedleBatch, setFramedUploadTime, type BatchItemResult, type BatchWriteResult } from '../src/wire/needle-batch.ts';
import { HEADERS } from '../src/wire/protocol.ts';
import { bad, checkMeta, header, parseReplicas, writeResult, type NeedleWriteContext } from './write-checks.ts';
import { replicatedBatchPut, type BatchItem, type ReplicationContext } from './replication.ts';

const META_FROM = { mime: "a record's media type", owner: "a record's owner" };

export async function storeNeedleBatch(
  ctx: NeedleWriteContext,
  repl: ReplicationContext,
  w: { block: number; headers: IncomingHttpHeaders; body: Buffer | undefined; requestId?: string },
): Promise<BatchWriteResult> {
  if (!w.body || w.body.length === 0) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'the body has no bytes');
  // A repair copy is one record for one copy; it has its own PUT.
  if (header(w.headers, HEADERS.repair) !== undefined) throw bad(`a needle batch cannot be a ${HEADERS.repair} write`);
  const body = w.body;
  const records = decodeNeedleBatch(body);
  const replicas = parseReplicas(w.headers);
  const now = Date.now();
  const results: (BatchItemResult | undefined)[] = new Array(records.length);
  const items: BatchItem[] = [];
  const slots: number[] = [];
  records.forEach((r, i) => {
    try {
      const fid = decodeFid(r.fid);
      if (fid.block !== w.block) throw bad(`file id ${r.fid} is in block ${fid.block}, not ${w.block}`);
      checkMeta(r.mime, r.owner, META_FROM);
      const crc = checkedCrc(r);
      if (crc === undefined) throw bad('the record does not match its CRC32-C: it was damaged on the way');
      // 0 asks for the primary's clock, as a PUT without x-ugcfs-upload-time does.
      if (r.uploadTime === 0) setFramedUploadTime(body, r, now);
      items.push({ fid: r.fid, meta: { key: fid.key, cookie: fid.cookie, uploadTime: r.uploadTime, mime: r.mime, owner: r.owner }, data: r.data, crc });
      slots.push(i);
    } catch (err) {
      results[i] = failure(r.fid, err);
    }
  });
  ctx.metrics.writeBatchRecords.observe(records.length);
  // Every record accepted: the peers get the very frame received (upload times now set).
  const frame = items.length === records.length ? body : undefined;
  const outcomes = items.length > 0 ? await replicatedBatchPut(repl, { block: w.block, items, frame, replicas, requestId: w.requestId }) : [];
  outcomes.forEach((o, k) => {
    const it = items[k]!;
    if (o.ok) {
      results[slots[k]!] = writeResult(it.fid, o.value);
      return;
    }
    const r = failure(it.fid, o.error);
    // As the PUT route logs a 5xx answer; a replication failure was logged where it was seen.
    if ('error' in r && r.error.code === 'UGCFS_ERR_INTERNAL') ctx.log.error({ err: o.error, fid: it.fid, reqId: w.requestId }, 'batch record failed');
    results[slots[k]!] = r;
  });
  return { results: results as BatchItemResult[] };
}

function failure(fid: string, err: unknown): BatchItemResult {
  const e = isUgcfsError(err) ? err : new UgcfsError('UGCFS_ERR_INTERNAL', 'internal error', { cause: err });
  return { fid, error: { code: e.code, message: e.message } };
}
