// File id v1: golden text forms (docs/FILE-ID.md) and properties of the codec.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FID_V1_LENGTH, MAX_KEY, decodeFid, encodeFid, looksLikeFid, newCookie } from '../src/wire/file-id.ts';
import { UgcfsError } from '../src/base/errors.ts';

// Each row is pinned forever: a fid handed out once must decode the same way for ever.
const GOLDEN: Array<[string, { block: number; key: bigint; cookie: number }]> = [
  ['1AAAAAAAAAAAAAAAAAAAA', { block: 0, key: 0n, cookie: 0 }],
  ['1____________________', { block: 0xffffffff, key: MAX_KEY, cookie: 0xffffffff }],
  ['1AAAABQAAAAAAMDnerb7v', { block: 5, key: 12345n, cookie: 0xdeadbeef }],
  ['1AAAAAQAAAAAAAAEAAAAB', { block: 1, key: 1n, cookie: 1 }],
  ['1ASNFZ4mrze8BI0VniavN', { block: 0x01234567, key: 0x89abcdef012345n, cookie: 0x6789abcd }],
];

describe('file id v1 golden text', () => {
  it.each(GOLDEN)('%s', (text, f) => {
    expect(encodeFid(f)).toBe(text);
    expect(decodeFid(text)).toEqual({ version: 1, ...f });
    expect(text).toHaveLength(FID_V1_LENGTH);
  });

  it('spells out the byte layout: block u32 BE, key u56 BE, cookie u32 BE', () => {
    const text = encodeFid({ block: 0x01020304, key: 0x05060708090a0bn, cookie: 0x0c0d0e0f });
    expect([...Buffer.from(text.slice(1), 'base64url')]).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(text[0]).toBe('1');
  });

  it.each([
    ['', 'empty'],
    ['1AAAABQAAAAAAMDnerb7', 'one character short'],
    ['1AAAABQAAAAAAMDnerb7vv', 'one character long'],
    ['2AAAABQAAAAAAMDnerb7v', 'unknown version'],
    ['1AAAABQAAAAAAMDnerb7+', 'not URL-safe'],
    ['1AAAABQAAAAAAMDnerb7=', 'padding'],
    ['1AAAABQAAAAAAMDner/7v', 'slash'],
    ['1AAAABQAAAAAAMDn rb7v', 'space'],
    ['1AAAABQAAAAAAMDnérb7v', 'non-ASCII'],
    ['../../../../etc/passwd', 'path traversal'],
  ])('rejects %j (%s) with UGCFS_ERR_BAD_FID', (text) => {
    expect(() => decodeFid(text)).toThrow(UgcfsError);
    try {
      decodeFid(text);
    } catch (err) {
      expect((err as UgcfsError).code).toBe('UGCFS_ERR_BAD_FID');
      expect((err as UgcfsError).status).toBe(400);
    }
  });

  it('is case-sensitive: changing the case of a letter names another file', () => {
    const a = decodeFid('1AAAABQAAAAAAMDnerb7v');
    const b = decodeFid('1AAAABQAAAAAAMDnErb7v');
    expect(b).not.toEqual(a);
  });

  it('refuses values the format cannot hold', () => {
    expect(() => encodeFid({ block: -1, key: 0n, cookie: 0 })).toThrow(RangeError);
    expect(() => encodeFid({ block: 2 ** 32, key: 0n, cookie: 0 })).toThrow(RangeError);
    expect(() => encodeFid({ block: 0, key: MAX_KEY + 1n, cookie: 0 })).toThrow(RangeError);
    expect(() => encodeFid({ block: 0, key: -1n, cookie: 0 })).toThrow(RangeError);
    expect(() => encodeFid({ block: 0, key: 0n, cookie: 2 ** 32 })).toThrow(RangeError);
    expect(() => encodeFid({ block: 1.5, key: 0n, cookie: 0 })).toThrow(RangeError);
  });

  it('new cookies are random 32-bit values', () => {
    const seen = new Set(Array.from({ length: 64 }, () => newCookie()));
    expect(seen.size).toBeGreaterThan(60);
    for (const c of seen) expect(c >>> 0).toBe(c);
  });
});

describe('file id properties', () => {
  const fidParts = fc.record({
    block: fc.integer({ min: 0, max: 0xffffffff }),
    key: fc.bigInt({ min: 0n, max: MAX_KEY }),
    cookie: fc.integer({ min: 0, max: 0xffffffff }),
  });

  it('round-trips every value, at fixed length, URL-safe', () => {
    fc.assert(
      fc.property(fidParts, (f) => {
        const text = encodeFid(f);
        expect(text).toHaveLength(FID_V1_LENGTH);
        expect(text).toMatch(/^1[A-Za-z0-9_-]{20}$/);
        expect(encodeURIComponent(text)).toBe(text);
        expect(decodeFid(text)).toEqual({ version: 1, ...f });
      }),
      { numRuns: 2000 },
    );
  });

  it('distinct values give distinct ids', () => {
    fc.assert(
      fc.property(fidParts, fidParts, (a, b) => {
        fc.pre(a.block !== b.block || a.key !== b.key || a.cookie !== b.cookie);
        expect(encodeFid(a)).not.toBe(encodeFid(b));
      }),
    );
  });

  it('random strings never crash the parser: they decode or throw UGCFS_ERR_BAD_FID', () => {
    const anyText = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: 'binary', maxLength: 30 }),
      fc.stringMatching(/^1[A-Za-z0-9_+/=.-]{18,22}$/),
      // right length, alphabet mixed with characters whose low 7 bits are in the alphabet
      fc.array(fc.constantFrom(...'AZaz09-_', '\u00c1', '\u0141', '\u00b0', '\u01ff'), { minLength: 20, maxLength: 20 }).map((cs) => '1' + cs.join('')),
    );
    fc.assert(
      fc.property(anyText, (s) => {
        let decoded;
        try {
          decoded = decodeFid(s);
        } catch (err) {
          expect(err).toBeInstanceOf(UgcfsError);
          expect((err as UgcfsError).code).toBe('UGCFS_ERR_BAD_FID');
          expect(looksLikeFid(s)).toBe(false);
          return;
        }
        // Whatever decodes is canonical: it encodes back to the very same text.
        expect(encodeFid(decoded)).toBe(s);
        expect(looksLikeFid(s)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('newCookie', () => {
  it('keeps drawing fresh values across refills of its random pool (1,024 cookies per fill)', () => {
    const cookies = Array.from({ length: 4096 }, () => newCookie());
    for (const c of cookies) expect(Number.isInteger(c) && c >= 0 && c <= 0xffffffff).toBe(true);
    // A pool that was not refilled would hand the same 1,024 values out again.
    const fills = [0, 1, 2, 3].map((i) => cookies.slice(i * 1024, (i + 1) * 1024).join(','));
    expect(new Set(fills).size).toBe(4);
    // 4,096 draws from 2^32 values: a handful of repeats at most, never a pattern.
    expect(new Set(cookies).size).toBeGreaterThan(4090);
  });
});
