// File ids (fids): the permanent name of a file. Layout is documented in docs/FILE-ID.md and
// pinned by test/file-id.test.ts. A fid never carries a server address, so moving blocks
// never changes a URL.
//
// Version 1 text form: "1" + base64url(15 bytes), 21 characters, case-sensitive:
//   bytes 0..3   block id   u32 big-endian
//   bytes 4..10  key        u56 big-endian (unique across the cluster, leased by the name server)
//   bytes 11..14 cookie     u32 big-endian (random; a wrong cookie answers like a missing file)
import { randomFillSync } from 'node:crypto';
import { UgcfsError } from '../base/errors.ts';

export interface Fid {
  readonly version: 1;
  readonly block: number;
  /** up to 2^56-1; kept as bigint so no precision is ever lost */
  readonly key: bigint;
  readonly cookie: number;
}

export const FID_V1_LENGTH = 21;
export const MAX_KEY = (1n << 56n) - 1n;
const V1_BYTES = 15;
const B64URL = /^[A-Za-z0-9_-]+$/;

// Cookies are drawn from crypto-random bytes filled 1,024 cookies at a time: randomBytes(4)
// per fid cost 1.8 µs (a getrandom call and a Buffer each), 58 µs per 32-fid assign batch;
// from the pool a cookie costs ~20 ns. Same source and unpredictability, as Node's own
// randomUUID entropy cache.
const cookiePool = Buffer.alloc(4096);
let cookieAt = cookiePool.length;

export function newCookie(): number {
  if (cookieAt >= cookiePool.length) {
    randomFillSync(cookiePool);
    cookieAt = 0;
  }
  const c = cookiePool.readUInt32BE(cookieAt);
  cookieAt += 4;
  return c;
}

export function encodeFid(f: Omit<Fid, 'version'> & { version?: 1 }): string {
  if (!Number.isInteger(f.block) || f.block < 0 || f.block > 0xffffffff) throw new RangeError(`block id out of range: ${f.block}`);
  if (f.key < 0n || f.key > MAX_KEY) throw new RangeError(`key out of range: ${f.key}`);
  if (!Number.isInteger(f.cookie) || f.cookie < 0 || f.cookie > 0xffffffff) throw new RangeError(`cookie out of range: ${f.cookie}`);
  const b = Buffer.alloc(V1_BYTES);
  b.writeUInt32BE(f.block, 0);
  b.writeUIntBE(Number(f.key >> 24n), 4, 4);
  b.writeUIntBE(Number(f.key & 0xffffffn), 8, 3);
  b.writeUInt32BE(f.cookie, 11);
  return '1' + b.toString('base64url');
}

/** Strict parser: anything but a canonical fid throws UGCFS_ERR_BAD_FID. */
export function decodeFid(text: string): Fid {
  if (typeof text !== 'string' || text.length === 0) throw badFid('empty file id');
  if (text[0] !== '1') throw badFid('unknown file id version');
  if (text.length !== FID_V1_LENGTH) throw badFid(`a version 1 file id has ${FID_V1_LENGTH} characters`);
  // Decoded by hand, 4 characters (24 bits) at a time, on every read of every server: the
  // Buffer round trip it replaces cost ~0.5 µs. 20 characters carry exactly the 15 bytes
  // (no spare bits), so every body made of the alphabet is canonical.
  const g0 = group(text, 1);
  const g1 = group(text, 5);
  const g2 = group(text, 9);
  const g3 = group(text, 13);
  const g4 = group(text, 17);
  if ((g0 | g1 | g2 | g3 | g4) < 0) throw badFid('file id has characters outside A-Z a-z 0-9 - _');
  const block = g0 * 0x100 + (g1 >>> 16); // bytes 0..3
  const keyHigh = (g1 & 0xffff) * 0x10000 + (g2 >>> 8); // bytes 4..7
  const keyLow = (g2 & 0xff) * 0x10000 + (g3 >>> 8); // bytes 8..10
  const cookie = (g3 & 0xff) * 0x1000000 + g4; // bytes 11..14
  return Object.freeze({ version: 1, block, key: (BigInt(keyHigh) << 24n) | BigInt(keyLow), cookie });
}

/** base64url character code -> its 6 bits; -1 outside the alphabet */
const B64URL_VALUE = new Int8Array(128).fill(-1);
for (const [i, ch] of [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'].entries()) B64URL_VALUE[ch.charCodeAt(0)] = i;

/** The 24 bits of 4 base64url characters from `at`; negative when one is outside the alphabet. */
function group(text: string, at: number): number {
  const ca = text.charCodeAt(at);
  const cb = text.charCodeAt(at + 1);
  const cc = text.charCodeAt(at + 2);
  const cd = text.charCodeAt(at + 3);
  // A code point over 127 is outside the table (and would alias into it if masked).
  if ((ca | cb | cc | cd) > 0x7f) return -1;
  const a = B64URL_VALUE[ca]!;
  const b = B64URL_VALUE[cb]!;
  const c = B64URL_VALUE[cc]!;
  const d = B64URL_VALUE[cd]!;
  return (a | b | c | d) < 0 ? -1 : (a << 18) | (b << 12) | (c << 6) | d;
}

/** Cheap shape test used to tell fids from legacy paths before a full decode. */
export function looksLikeFid(text: string): boolean {
  return text.length === FID_V1_LENGTH && text[0] === '1' && B64URL.test(text.slice(1));
}

function badFid(why: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_FID', `malformed file id: ${why}`);
}

/** The fid text of a URL path segment, percent-decoded (a bad escape is UGCFS_ERR_BAD_FID). */
export function fidTextFromPath(segment: string): string {
  if (segment.indexOf('%') < 0) return segment;
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new UgcfsError('UGCFS_ERR_BAD_FID', 'malformed file id: bad percent-encoding');
  }
}
