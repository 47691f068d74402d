// Needle (record) format v1 — the byte layout is specified in dataserver/README.md and pinned
// by test/dataserver/needle.test.ts. A needle is self-describing so that a block file alone
// (without its index) is enough to rebuild everything: recovery, pull and scrub all scan it.
import { crc32c } from '@node-rs/crc32';
import { UgcfsError } from '../src/base/errors.ts';
import { crc32cCombine } from './crc-combine.ts';

export const NEEDLE_MAGIC = 0x55474e31; // "UGN1": also the format version
export const HEADER_SIZE = 32;
export const CRC_SIZE = 4;
export const ALIGN = 8;
export const FLAG_TOMBSTONE = 0x01;
export const MAX_META_BYTES = 255;
const MAX_KEY = (1n << 56n) - 1n;

export interface NeedleMeta {
  key: bigint;
  cookie: number;
  /** ms since the epoch, set once by the primary and carried to every replica */
  uploadTime: number;
  mime: string;
  owner: string;
}

export interface Needle extends NeedleMeta {
  flags: number;
  data: Buffer;
  /** CRC32-C of the data alone (what WriteResult and scrub digests carry) */
  dataCrc: number;
  /** bytes the record takes in the block, padding included */
  length: number;
}

export function alignUp(n: number): number {
  // Plain arithmetic, not bit masks: sizes near 4 GiB overflow 32-bit integer operators.
  return Math.ceil(n / ALIGN) * ALIGN;
}

/** Bytes a record takes on disk. */
export function needleLength(mimeLen: number, ownerLen: number, dataSize: number): number {
  return alignUp(HEADER_SIZE + mimeLen + ownerLen + dataSize + CRC_SIZE);
}

export function isTombstone(flags: number): boolean {
  return (flags & FLAG_TOMBSTONE) !== 0;
}

/** A record as the pieces written with one writev: header+metadata, the caller's data, CRC+padding. */
export interface NeedleParts {
  parts: Buffer[];
  length: number;
}

/**
 * Builds one record without copying the data: the data buffer itself is one of the parts.
 * `dataCrc` (CRC32-C of `data`) may be passed when the caller has it, saving a pass.
 * Throws RangeError on values the format cannot hold.
 */
export function encodeNeedleParts(meta: NeedleMeta, data: Buffer, flags = 0, dataCrc?: number): NeedleParts {
  const mime = Buffer.from(meta.mime, 'latin1');
  const owner = Buffer.from(meta.owner, 'latin1');
  if (mime.length > MAX_META_BYTES || owner.length > MAX_META_BYTES) throw new RangeError('mime or owner longer than 255 bytes');
  if (meta.key < 0n || meta.key > MAX_KEY) throw new RangeError(`key out of range: ${meta.key}`);
  if (!Number.isInteger(meta.uploadTime) || meta.uploadTime < 0) throw new RangeError('bad upload time');
  if (data.length > 0xffffffff) throw new RangeError('data too large for one record');
  const length = needleLength(mime.length, owner.length, data.length);
  const head = Buffer.allocUnsafe(HEADER_SIZE + mime.length + owner.length);
  head.writeUInt32BE(NEEDLE_MAGIC, 0);
  head.writeUInt8(flags, 4);
  head.writeUInt8(mime.length, 5);
  head.writeUInt8(owner.length, 6);
  head.writeUInt8(0, 7);
  head.writeBigUInt64BE(meta.key, 8);
  head.writeUInt32BE(meta.cookie >>> 0, 16);
  head.writeBigUInt64BE(BigInt(meta.uploadTime), 20);
  head.writeUInt32BE(data.length, 28);
  mime.copy(head, HEADER_SIZE);
  owner.copy(head, HEADER_SIZE + mime.length);
  // Padding must be zero so identical records are byte-identical on every replica.
  const tail = Buffer.alloc(length - head.length - data.length);
  tail.writeUInt32BE(crc32cCombine(crc32c(head), dataCrc ?? crc32c(data), data.length), 0);
  return { parts: data.length > 0 ? [head, data, tail] : [head, tail], length };
}

/** Builds the on-disk bytes of one record as a single buffer. */
export function encodeNeedle(meta: NeedleMeta, data: Uint8Array, flags = 0, dataCrc?: number): Buffer {
  const d = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const { parts, length } = encodeNeedleParts(meta, d, flags, dataCrc);
  return Buffer.concat(parts, length);
}

export function encodeTombstone(key: bigint, cookie: number, time: number): Buffer {
  return encodeNeedle({ key, cookie, uploadTime: time, mime: '', owner: '' }, Buffer.alloc(0), FLAG_TOMBSTONE);
}

export interface NeedleHeader {
  flags: number;
  mimeLen: number;
  ownerLen: number;
  key: bigint;
  cookie: number;
  uploadTime: number;
  dataSize: number;
  length: number;
}

/**
 * Reads a header; undefined when the bytes cannot start a record (bad magic, reserved byte
 * set, impossible size). `maxLength` bounds the record so a damaged size cannot make a
 * reader allocate gigabytes.
 */
export function decodeHeader(b: Buffer, at = 0, maxLength = Number.MAX_SAFE_INTEGER): NeedleHeader | undefined {
  if (b.length - at < HEADER_SIZE) return undefined;
  if (b.readUInt32BE(at) !== NEEDLE_MAGIC || b.readUInt8(at + 7) !== 0) return undefined;
  const flags = b.readUInt8(at + 4);
  if ((flags & ~FLAG_TOMBSTONE) !== 0) return undefined;
  const mimeLen = b.readUInt8(at + 5);
  const ownerLen = b.readUInt8(at + 6);
  const dataSize = b.readUInt32BE(at + 28);
  const length = needleLength(mimeLen, ownerLen, dataSize);
  if (length > maxLength) return undefined;
  const key = b.readBigUInt64BE(at + 8);
  if (key > MAX_KEY) return undefined;
  return {
    flags,
    mimeLen,
    ownerLen,
    key,
    cookie: b.readUInt32BE(at + 16),
    // Two 32-bit halves rather than a BigInt read: the same (correctly rounded) number,
    // without allocating on every read.
    uploadTime: b.readUInt32BE(at + 20) * 0x1_0000_0000 + b.readUInt32BE(at + 24),
    dataSize,
    length,
  };
}

export type NeedleProblem = 'magic' | 'truncated' | 'crc';

/**
 * Decodes and verifies one whole record starting at `at`. Returns the problem instead of
 * throwing so scanners can decide between "cut the tail here" and "report and go on".
 * The returned data is a view into `b`, not a copy.
 */
export function decodeNeedle(b: Buffer, at = 0, maxLength?: number): Needle | NeedleProblem {
  return decode(b, at, maxLength, true);
}

/**
 * decodeNeedle for a reader that checks the data's CRC32-C itself (a ugcfs client that sent
 * `x-ugcfs-verify: client`): no pass over the data here. Its `dataCrc` is derived from the
 * record's stored CRC and its prefix, so crc32c(data) === dataCrc holds exactly when the whole
 * record is intact: a damaged header, metadata, data or stored CRC all fail the reader's check.
 */
export function decodeNeedleForClientCheck(b: Buffer): Needle | NeedleProblem {
  return decode(b, 0, undefined, false);
}

function decode(b: Buffer, at: number, maxLength: number | undefined, checkData: boolean): Needle | NeedleProblem {
  const h = decodeHeader(b, at, maxLength);
  if (!h) return b.length - at < HEADER_SIZE ? 'truncated' : 'magic';
  if (b.length - at < h.length) return 'truncated';
  const metaEnd = at + HEADER_SIZE + h.mimeLen + h.ownerLen;
  const dataEnd = metaEnd + h.dataSize;
  const stored = b.readUInt32BE(dataEnd);
  const data = b.subarray(metaEnd, dataEnd);
  const prefixCrc = crc32c(b.subarray(at, metaEnd));
  let dataCrc: number;
  if (checkData) {
    // One pass over the data yields both CRCs: the record's is combined from the parts.
    dataCrc = crc32c(data);
    if (crc32cCombine(prefixCrc, dataCrc, h.dataSize) !== stored) return 'crc';
  } else {
    // combine(prefix, data) === stored, solved for the data's CRC (the combine is an XOR of
    // the shifted prefix CRC, so applying it to the stored CRC undoes it).
    dataCrc = crc32cCombine(prefixCrc, stored, h.dataSize);
  }
  return {
    key: h.key,
    cookie: h.cookie,
    uploadTime: h.uploadTime,
    flags: h.flags,
    mime: b.toString('latin1', at + HEADER_SIZE, at + HEADER_SIZE + h.mimeLen),
    owner: b.toString('latin1', at + HEADER_SIZE + h.mimeLen, metaEnd),
    data,
    dataCrc,
    length: h.length,
  };
}

/** decodeNeedle for callers that serve data: any problem becomes a typed error. */
export function decodeNeedleOrThrow(b: Buffer, where: string): Needle {
  const n = decodeNeedle(b);
  if (typeof n !== 'string') return n;
  if (n === 'crc') throw new UgcfsError('UGCFS_ERR_CHECKSUM', `record at ${where} failed its CRC32-C check`);
  throw new UgcfsError('UGCFS_ERR_CORRUPT', `record at ${where} is damaged (${n})`);
}
