// Needle batch frame v1: several writes to one block in one request body (the client's
// coalesced writes to a primary, the primary's forward to each replica). The byte layout is
// specified in dataserver/README.md ("Batch write frame") and pinned by
// test/dataserver/needle-batch.test.ts. It lives in src/ because both sides speak it.
import { crc32c } from '@node-rs/crc32';
import { UgcfsError, isErrorCode } from '../base/errors.ts';

export const BATCH_MAGIC = 0x55474231; // "UGB1": also the frame version
export const BATCH_HEADER_SIZE = 8;
export const BATCH_RECORD_HEADER_SIZE = 20;
/** the media type a batch body is sent with */
export const BATCH_CONTENT_TYPE = 'application/vnd.ugcfs.needle-batch';
/** more records than this in one frame is refused (a bound on the work one request asks for) */
export const MAX_BATCH_RECORDS = 1024;

export interface BatchRecord {
  fid: string;
  mime: string;
  owner: string;
  /** ms since the epoch; 0 asks the primary to set it */
  uploadTime: number;
  /** CRC32-C of `data`, checked by the receiver */
  crc: number;
  data: Buffer;
}

/** The frame as buffers to send back to back; the data buffers are not copied. */
export function encodeNeedleBatch(records: readonly BatchRecord[]): Buffer[] {
  if (records.length > MAX_BATCH_RECORDS) throw new RangeError(`at most ${MAX_BATCH_RECORDS} records per batch`);
  const head = Buffer.allocUnsafe(BATCH_HEADER_SIZE);
  head.writeUInt32BE(BATCH_MAGIC, 0);
  head.writeUInt32BE(records.length, 4);
  const parts: Buffer[] = [head];
  for (const r of records) {
    const fid = Buffer.from(r.fid, 'latin1');
    const mime = Buffer.from(r.mime, 'latin1');
    const owner = Buffer.from(r.owner, 'latin1');
    if (fid.length > 0xffff || mime.length > 0xff || owner.length > 0xff) throw new RangeError('fid, mime or owner too long for a batch record');
    if (!Number.isInteger(r.uploadTime) || r.uploadTime < 0) throw new RangeError('bad upload time');
    const h = Buffer.allocUnsafe(BATCH_RECORD_HEADER_SIZE + fid.length + mime.length + owner.length);
    h.writeUInt16BE(fid.length, 0);
    h.writeUInt8(mime.length, 2);
    h.writeUInt8(owner.length, 3);
    h.writeUInt32BE(r.data.length, 4);
    h.writeUInt32BE(r.crc >>> 0, 8);
    // Two 32-bit halves: no BigInt per record.
    h.writeUInt32BE(Math.floor(r.uploadTime / 0x1_0000_0000), 12);
    h.writeUInt32BE(r.uploadTime % 0x1_0000_0000, 16);
    let at = BATCH_RECORD_HEADER_SIZE;
    at += fid.copy(h, at);
    at += mime.copy(h, at);
    owner.copy(h, at);
    parts.push(h, r.data);
  }
  return parts;
}

/**
 * Decodes a whole frame; any malformation of the framing refuses the whole batch (nothing of
 * it is written). Each record's data is a view into `body`. CRCs are not checked here: a
 * record damaged on the way is refused on its own by the receiver (see `damaged`), the
 * others in the batch still land.
 */
/** A decoded record, with where its header starts in the frame. */
export interface FramedRecord extends BatchRecord {
  offset: number;
}

export function decodeNeedleBatch(body: Buffer): FramedRecord[] {
  const bad = (why: string) => new UgcfsError('UGCFS_ERR_BAD_REQUEST', `malformed needle batch: ${why}`);
  if (body.length < BATCH_HEADER_SIZE || body.readUInt32BE(0) !== BATCH_MAGIC) throw bad('it does not start with the UGB1 header');
  const count = body.readUInt32BE(4);
  if (count === 0 || count > MAX_BATCH_RECORDS) throw bad(`it holds ${count} records (1 to ${MAX_BATCH_RECORDS} allowed)`);
  const out: FramedRecord[] = [];
  let at = BATCH_HEADER_SIZE;
  for (let i = 0; i < count; i++) {
    if (body.length - at < BATCH_RECORD_HEADER_SIZE) throw bad(`record ${i} is cut short`);
    const fidLen = body.readUInt16BE(at);
    const mimeLen = body.readUInt8(at + 2);
    const ownerLen = body.readUInt8(at + 3);
    const size = body.readUInt32BE(at + 4);
    const crc = body.readUInt32BE(at + 8);
    const uploadTime = body.readUInt32BE(at + 12) * 0x1_0000_0000 + body.readUInt32BE(at + 16);
    if (!Number.isSafeInteger(uploadTime)) throw bad(`record ${i} has an impossible upload time`);
    const metaAt = at + BATCH_RECORD_HEADER_SIZE;
    const dataAt = metaAt + fidLen + mimeLen + ownerLen;
    const end = dataAt + size;
    if (end > body.length) throw bad(`record ${i} is cut short`);
    const data = body.subarray(dataAt, end);
    out.push({
      fid: body.toString('latin1', metaAt, metaAt + fidLen),
      mime: body.toString('latin1', metaAt + fidLen, metaAt + fidLen + mimeLen),
      owner: body.toString('latin1', metaAt + fidLen + mimeLen, dataAt),
      uploadTime,
      crc,
      data,
      offset: at,
    });
    at = end;
  }
  if (at !== body.length) throw bad(`${body.length - at} bytes follow the last record`);
  return out;
}

/**
 * Sets a decoded record's upload time inside the frame itself, so a primary can forward the
 * frame it received (with the times it chose) without encoding or copying it again.
 */
export function setFramedUploadTime(frame: Buffer, r: FramedRecord, uploadTime: number): void {
  frame.writeUInt32BE(Math.floor(uploadTime / 0x1_0000_0000), r.offset + 12);
  frame.writeUInt32BE(uploadTime % 0x1_0000_0000, r.offset + 16);
  r.uploadTime = uploadTime;
}

/** The record's data against its CRC32-C; returns the computed CRC when they match, undefined when not. */
export function checkedCrc(r: BatchRecord): number | undefined {
  const crc = crc32c(r.data);
  return crc === r.crc ? crc : undefined;
}

/** One record's answer in a batch, in the order of the frame. */
export type BatchItemResult = { fid: string; size: number; crc: number; existed?: boolean } | { fid: string; error: { code: string; message: string } };

/** The answer to a batch: 200 whenever the frame was read, each record with its own outcome. */
export interface BatchWriteResult {
  results: BatchItemResult[];
}

/** A batch answer, one result per record sent; anything else is an upstream failure of the whole batch. */
export function parseBatchResults(body: Buffer, count: number, who: string): BatchItemResult[] {
  let parsed: Partial<BatchWriteResult>;
  try {
    parsed = JSON.parse(body.toString('utf8')) as Partial<BatchWriteResult>;
  } catch {
    throw new UgcfsError('UGCFS_ERR_UPSTREAM', `${who} answered a batch with something that is not JSON`);
  }
  if (!Array.isArray(parsed.results) || parsed.results.length !== count) {
    throw new UgcfsError('UGCFS_ERR_UPSTREAM', `${who} answered a batch of ${count} with ${parsed.results?.length ?? 'no'} results`);
  }
  return parsed.results;
}

/** A record's failure as the error a PUT of it alone would have thrown. */
export function batchItemError(r: { error: { code: string; message: string } }): UgcfsError {
  return new UgcfsError(isErrorCode(r.error.code) ? r.error.code : 'UGCFS_ERR_INTERNAL', r.error.message);
}
