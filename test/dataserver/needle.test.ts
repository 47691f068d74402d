// Golden bytes for the on-disk formats (dataserver/README.md): needle v1, the index entry
// key/value and the block meta. A change here is a format change and needs a new version.
import { describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { decodeHeader, decodeNeedle, decodeNeedleForClientCheck, encodeNeedle, encodeNeedleParts, encodeTombstone, isTombstone, needleLength, NEEDLE_MAGIC } from '../../dataserver/needle.ts';
import { crc32cCombine } from '../../dataserver/crc-combine.ts';
import { decodeEntry, decodeEntryKey, decodeMeta, encodeEntry, encodeMeta, entryKey, metaKey } from '../../dataserver/needle-index.ts';

const META = { key: 0x01020304050607n, cookie: 0xdeadbeef, uploadTime: 1700000000000, mime: 'image/jpeg', owner: 'u1' };

const GOLDEN_NEEDLE =
  '55474e31' + // magic "UGN1"
  '00' + // flags
  '0a' + // mime length 10
  '02' + // owner length 2
  '00' + // reserved
  '0001020304050607' + // key u64 BE (56 bits used)
  'deadbeef' + // cookie
  '0000018bcfe56800' + // upload time ms u64 BE
  '00000005' + // data size
  Buffer.from('image/jpeg').toString('hex') +
  Buffer.from('u1').toString('hex') +
  Buffer.from('hello').toString('hex') +
  '898cb84b' + // CRC32-C of everything above
  '000000'; // zero padding to 56 = 8-byte multiple

describe('needle v1 golden bytes', () => {
  it('uses CRC32-C (Castagnoli), not CRC32', () => {
    expect(crc32c('123456789')).toBe(0xe3069283);
  });

  it('encodes a record byte for byte', () => {
    const b = encodeNeedle(META, Buffer.from('hello'));
    expect(b.toString('hex')).toBe(GOLDEN_NEEDLE);
    expect(b.length).toBe(56);
    expect(b.readUInt32BE(53 - 4)).toBe(crc32c(b.subarray(0, 49)));
  });

  it('decodes the golden record', () => {
    const n = decodeNeedle(Buffer.from(GOLDEN_NEEDLE, 'hex'));
    if (typeof n === 'string') throw new Error(n);
    expect(n).toMatchObject({ ...META, flags: 0, length: 56 });
    expect(n.data.toString()).toBe('hello');
    expect(n.dataCrc).toBe(crc32c(Buffer.from('hello')));
  });

  it('encodes a tombstone byte for byte', () => {
    const t = encodeTombstone(0x01020304050607n, 0xdeadbeef, 1700000000001);
    expect(t.toString('hex')).toBe('55474e31010000000001020304050607deadbeef0000018bcfe56801000000009ffe9ce500000000');
    expect(isTombstone(decodeHeader(t)!.flags)).toBe(true);
  });

  it('every flipped bit is caught', () => {
    const good = Buffer.from(GOLDEN_NEEDLE, 'hex');
    for (let i = 0; i < 53; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const b = Buffer.from(good);
        b[i]! ^= 1 << bit;
        expect(typeof decodeNeedle(b), `byte ${i} bit ${bit}`).toBe('string');
      }
    }
  });

  it('reports a cut record as truncated and a wrong magic as such', () => {
    const good = Buffer.from(GOLDEN_NEEDLE, 'hex');
    expect(decodeNeedle(good.subarray(0, 40))).toBe('truncated');
    expect(decodeNeedle(good.subarray(0, 10))).toBe('truncated');
    const b = Buffer.from(good);
    b.writeUInt32BE(NEEDLE_MAGIC + 1, 0);
    expect(decodeNeedle(b)).toBe('magic');
  });

  it('round-trips any record, always 8-byte aligned', () => {
    fc.assert(
      fc.property(
        fc.record({
          key: fc.bigInt({ min: 0n, max: (1n << 56n) - 1n }),
          cookie: fc.integer({ min: 0, max: 0xffffffff }),
          uploadTime: fc.integer({ min: 0, max: 2 ** 48 }),
          mime: fc.stringMatching(/^[a-z]{1,20}\/[a-z0-9.+-]{1,40}$/),
          owner: fc.stringMatching(/^[\x20-\x7e]{0,60}$/),
        }),
        fc.uint8Array({ maxLength: 300 }),
        (meta, data) => {
          const b = encodeNeedle(meta, data);
          expect(b.length % 8).toBe(0);
          expect(b.length).toBe(needleLength(meta.mime.length, meta.owner.length, data.length));
          const n = decodeNeedle(b);
          if (typeof n === 'string') throw new Error(n);
          expect(n).toMatchObject(meta);
          expect(Buffer.compare(n.data, Buffer.from(data))).toBe(0);
        },
      ),
    );
  });

  it('refuses metadata the format cannot hold', () => {
    expect(() => encodeNeedle({ ...META, mime: 'x'.repeat(256) }, Buffer.alloc(1))).toThrow(RangeError);
    expect(() => encodeNeedle({ ...META, key: 1n << 56n }, Buffer.alloc(1))).toThrow(RangeError);
  });
});

describe('index v1 golden bytes', () => {
  it('entry key: "n" + block u32 BE + key u56 BE (12 bytes)', () => {
    const k = entryKey(7, 0x01020304050607n);
    expect(k.toString('hex')).toBe('6e0000000701020304050607');
    expect(decodeEntryKey(k)).toEqual({ block: 7, key: 0x01020304050607n });
  });

  it('entry value: offset u48, length u32, cookie u32, flags u8 (15 bytes)', () => {
    const e = { offset: 0x123456789a, length: 4096, cookie: 0xdeadbeef, flags: 0 };
    const v = encodeEntry(e);
    expect(v.toString('hex')).toBe('00123456789a00001000deadbeef00');
    expect(decodeEntry(v)).toEqual(e);
  });

  it('block meta: version, flags, gen, watermark and stats (28 bytes)', () => {
    const m = { flags: 3, gen: 2, end: 1048576, liveCount: 10, liveBytes: 40960, deletedBytes: 8192 };
    expect(metaKey(7).toString('hex')).toBe('6200000007');
    const v = encodeMeta(m);
    expect(v.toString('hex')).toBe('0103000000020000001000000000000a00000000a000000000002000');
    expect(decodeMeta(v)).toEqual(m);
  });
});

describe('CRC32-C combine', () => {
  it('equals the CRC of the concatenation', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ maxLength: 5000 }), (a, b) => {
        expect(crc32cCombine(crc32c(a), crc32c(b), b.length)).toBe(crc32c(Buffer.concat([a, b])));
      }),
    );
    const big = Buffer.alloc(3 << 20, 7);
    expect(crc32cCombine(crc32c('head'), crc32c(big), big.length)).toBe(crc32c(Buffer.concat([Buffer.from('head'), big])));
  });
});

describe('needle parts', () => {
  it('the pieces written with writev are exactly the single-buffer record, data not copied', () => {
    const data = Buffer.from('hello');
    const { parts, length } = encodeNeedleParts(META, data);
    expect(Buffer.concat(parts).toString('hex')).toBe(GOLDEN_NEEDLE);
    expect(length).toBe(56);
    expect(parts[1]).toBe(data);
  });
});

describe('decode for a reader that checks the data itself', () => {
  it('gives the same data CRC as the full check, without a pass over the data', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 3000 }), fc.string({ maxLength: 40 }), (bytes, owner) => {
        const rec = encodeNeedle({ ...META, owner: owner.replace(/[^\x20-\x7e]/g, '') }, Buffer.from(bytes));
        const full = decodeNeedle(rec);
        const split = decodeNeedleForClientCheck(rec);
        if (typeof full === 'string' || typeof split === 'string') throw new Error('clean record refused');
        expect(split.dataCrc).toBe(full.dataCrc);
        expect(split.dataCrc).toBe(crc32c(split.data));
      }),
    );
  });

  it('every damaged byte of a record fails either here or the reader check', () => {
    const data = Buffer.from('a product photo, pretend');
    const rec = encodeNeedle({ ...META, mime: 'image/jpeg', owner: 'seller-7' }, data);
    const covered = 32 + 'image/jpeg'.length + 'seller-7'.length + data.length + 4; // the padding after the CRC carries nothing
    for (let at = 0; at < covered; at++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const bad = Buffer.from(rec);
        bad[at]! ^= mask;
        const n = decodeNeedleForClientCheck(bad);
        // A problem string, or an answer whose data does not match the CRC it goes out with.
        const passes = typeof n !== 'string' && crc32c(n.data) === n.dataCrc;
        expect(passes, `byte ${at} ^ ${mask}`).toBe(false);
      }
    }
  });
});
