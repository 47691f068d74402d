// CRC32-C of a concatenation from the CRCs of its parts (the zlib crc32_combine method,
// with the Castagnoli polynomial). A read needs both the record CRC (prefix + data) and the
// data's own CRC; combining costs ~1 µs instead of a second pass over the data.
const POLY = 0x82f63b78; // reflected Castagnoli polynomial

/** a(x) * b(x) modulo the polynomial, in reflected bit order. */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

// X2N[k] = x^(2^k) modulo the polynomial.
const X2N = new Uint32Array(32);
{
  let p = 0x40000000; // x^1
  X2N[0] = p;
  for (let n = 1; n < 32; n++) X2N[n] = p = multModP(p, p);
}

/** x^(n * 2^k) modulo the polynomial; n < 2^32. */
function x2nModP(n: number, k: number): number {
  let p = 0x80000000; // x^0
  while (n) {
    if (n & 1) p = multModP(X2N[k & 31]!, p);
    n >>>= 1;
    k++;
  }
  return p;
}

/** CRC32-C of A||B given crc(A), crc(B) and the length of B in bytes. */
export function crc32cCombine(crcA: number, crcB: number, lengthB: number): number {
  return (multModP(x2nModP(lengthB, 3), crcA) ^ crcB) >>> 0;
}
