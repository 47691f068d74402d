// Property and fuzz tests of every parser that sees untrusted bytes: the fid codec, the
// variant URL grammar, the legacy path normaliser and the needle decoder. Each either
// accepts and returns something that satisfies its own invariants, or refuses with the one
// stable code it documents; nothing else may escape (no TypeError, RangeError, URIError).
// Inputs include long adversarial strings, so a super-linear regex shows up as a test that
// runs past vitest's timeout rather than passing quietly.
import fc from 'fast-check';
import { crc32c } from '@node-rs/crc32';
import { describe, expect, it } from 'vitest';
import { UgcfsError, type ErrorCode } from '../../src/base/errors.ts';
import { decodeFid, encodeFid, FID_V1_LENGTH, looksLikeFid, MAX_KEY } from '../../src/wire/file-id.ts';
import { legacyPathFromName, legacyPathFromUrl, MAX_LEGACY_PATH_BYTES, MAX_LEGACY_SEGMENT_BYTES } from '../../src/wire/legacy-path.ts';
import { MAX_DIMENSION, MAX_OUTPUT_SIDE, MAX_URL_LENGTH, parseTarget, resolveVariant, variantFromKey, type ResolveOptions } from '../../origin/variant-url.ts';
import { decodeNeedle, encodeNeedle, HEADER_SIZE, CRC_SIZE } from '../../dataserver/needle.ts';

const RUNS = Number(process.env.UGCFS_FUZZ_RUNS ?? 1000);
const seedOpt = process.env.UGCFS_FAULT_SEED ? { seed: Number(process.env.UGCFS_FAULT_SEED) } : {};
const params = { numRuns: RUNS, ...seedOpt };

/** Runs fn; a throw must be a UgcfsError with one of `codes`, else the property fails. */
function refusesOnlyWith<T>(codes: ErrorCode[], fn: () => T): T | undefined {
  try {
    return fn();
  } catch (err) {
    if (!(err instanceof UgcfsError)) throw new Error(`untyped ${(err as Error)?.name}: ${(err as Error)?.message}`);
    if (!codes.includes(err.code)) throw new Error(`unexpected code ${err.code}: ${err.message}`);
    return undefined;
  }
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const b64char = fc.constantFrom(...B64.split(''));
// Characters that break parsers: separators, escapes, dots, controls, surrogates, NFC bait.
const nasty = fc.constantFrom('/', '.', '..', '%', '%2e', '%2F', '%00', '%ff', '%c0%af', '_', 'x', 'xz', 'q', 'Q', '?', '&', '=', '#', '\\', '\u0000', '\u001f', '\u007f', '\u0085', '\ud800', '\udc00', 'e\u0301', '\u00e9', '\ufeff', ' ', '+', '~', '😀', 'A'.repeat(300));
const messy = fc.array(fc.oneof(fc.string({ maxLength: 8 }), nasty, fc.stringMatching(/^[0-9]{1,12}$/)), { maxLength: 40 }).map((a) => a.join(''));

describe('fid parser', () => {
  it('every well-formed fid round-trips; every other string is BAD_FID, nothing else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 40 }), fc.array(b64char, { minLength: 18, maxLength: 24 }).map((a) => a.join('')), fc.array(b64char, { minLength: 20, maxLength: 20 }).map((a) => '1' + a.join(''))), (s) => {
        const f = refusesOnlyWith(['UGCFS_ERR_BAD_FID'], () => decodeFid(s));
        if (f) {
          expect(s).toHaveLength(FID_V1_LENGTH);
          expect(looksLikeFid(s)).toBe(true);
          expect(encodeFid(f)).toBe(s);
          expect(f.key <= MAX_KEY).toBe(true);
        }
      }),
      params,
    );
  });

  it('a single changed character never decodes to the same file', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.bigInt({ min: 0n, max: MAX_KEY }), fc.integer({ min: 0, max: 0xffffffff }), fc.nat(FID_V1_LENGTH - 1), b64char, (block, key, cookie, at, ch) => {
        const fid = encodeFid({ block, key, cookie });
        const changed = fid.slice(0, at) + ch + fid.slice(at + 1);
        if (changed === fid) return;
        const f = refusesOnlyWith(['UGCFS_ERR_BAD_FID'], () => decodeFid(changed));
        if (f) expect(f.block !== block || f.key !== key || f.cookie !== cookie).toBe(true);
      }),
      params,
    );
  });
});

const resolveOpts: ResolveOptions = {
  presets: new Map([['thumb', { w: 200, h: 200, fit: 'cover' }]]),
  strict: false,
  allowedSizes: new Set(),
  maxOutputPixels: 25_000_000,
  negotiate: true,
  accept: 'image/avif,image/webp;q=0.9,*/*',
};
const VARIANT_CODES: ErrorCode[] = ['UGCFS_ERR_BAD_PATH', 'UGCFS_ERR_BAD_PARAM', 'UGCFS_ERR_OUTPUT_TOO_LARGE', 'UGCFS_ERR_NOT_ALLOWED'];

const sampleFid = encodeFid({ block: 7, key: 123456789n, cookie: 0xdeadbeef });
const queryParam = fc.tuple(fc.constantFrom('w', 'h', 'q', 'fit', 'fmt', 'dpr', 'preset', 'sig', 'W', 'x', ''), fc.oneof(fc.stringMatching(/^[0-9]{0,12}$/), fc.constantFrom('cover', 'inside', 'fill', 'webp', 'avif', 'jpeg', 'png', 'gif', '1.5', '3.01', '0', '-1', '1e3', 'thumb', '%', '%zz', '%e2%82'), fc.string({ maxLength: 6 })));
const suffix = fc.oneof(
  fc.tuple(fc.stringMatching(/^[0-9]{1,6}$/), fc.stringMatching(/^[0-9]{1,6}$/), fc.constantFrom('', 'xz'), fc.constantFrom('', 'q90', 'Q5', 'q0', 'q101', 'q'), fc.constantFrom('jpg', 'png', 'webp', 'avif', 'gif', 'JPG', 'jp'))
    .map(([w, h, xz, q, e]) => `_${w}x${h}${xz}${q}.${e}`),
  fc.constantFrom('_q90.jpg', '_.webp', '_Q1.png', '_q.jpg', '_.webp_.webp', '_x.jpg', '_1x.jpg'),
);
const target = fc.oneof(
  messy.map((s) => '/' + s),
  fc.tuple(fc.constantFrom(sampleFid, sampleFid.slice(0, 20), 'uploads/2019/a'), fc.constantFrom('', '.jpg', '.JPEG', '.toolongext', '.'), fc.oneof(fc.constant(''), suffix), fc.array(queryParam, { maxLength: 5 }))
    .map(([id, ext, suf, qs]) => `/${id}${ext}${suf}${qs.length ? '?' + qs.map(([k, v]) => `${k}=${v}`).join('&') : ''}`),
  // long inputs aimed at the suffix regexes and the query splitter
  fc.tuple(fc.constantFrom('_1x1', '_1x', 'xz', 'q1', '%2e%2e/', '&w=1', '..'), fc.integer({ min: 100, max: 1300 })).map(([unit, n]) => `/${sampleFid}.jpg${unit.repeat(n)}`.slice(0, MAX_URL_LENGTH + 10)),
);

describe('variant URL grammar', () => {
  it('parses into in-range specs or refuses with BAD_PATH/BAD_PARAM; resolved variants stay within limits and their keys round-trip', () => {
    fc.assert(
      fc.property(target, (url) => {
        const t = refusesOnlyWith(VARIANT_CODES, () => parseTarget(url));
        if (!t) return;
        if (t.kind === 'fid') expect(looksLikeFid(t.id)).toBe(true);
        else expect(t.id.startsWith('/')).toBe(true);
        const s = t.spec;
        if (!s) return;
        for (const d of [s.w, s.h]) if (d !== undefined) expect(d >= 1 && d <= MAX_DIMENSION).toBe(true);
        if (s.q !== undefined) expect(s.q >= 1 && s.q <= 100).toBe(true);
        if (s.dpr !== undefined) expect(s.dpr >= 1 && s.dpr <= 3).toBe(true);
        const v = refusesOnlyWith(VARIANT_CODES, () => resolveVariant(s, resolveOpts));
        if (!v) return;
        expect(v.w <= MAX_OUTPUT_SIDE && v.h <= MAX_OUTPUT_SIDE).toBe(true);
        if (v.w > 0 && v.h > 0) expect(v.w * v.h <= resolveOpts.maxOutputPixels).toBe(true);
        const back = variantFromKey(v.key, v.negotiated);
        expect(back).toEqual(v);
      }),
      params,
    );
  });

  it('peer variant keys: anything but a canonical key is BAD_PARAM', () => {
    fc.assert(
      fc.property(fc.oneof(messy, fc.tuple(fc.nat(99999), fc.nat(99999), fc.constantFrom('cover', 'inside', 'x'), fc.constantFrom('jpeg', 'auto', 'gif'), fc.nat(999)).map(([w, h, f, m, q]) => `${w}x${h}.${f}.${m}.q${q}`)), (key) => {
        const v = refusesOnlyWith(['UGCFS_ERR_BAD_PARAM'], () => variantFromKey(key, false));
        if (v) expect(v.w <= MAX_OUTPUT_SIDE && v.h <= MAX_OUTPUT_SIDE && v.q <= 100).toBe(true);
      }),
      params,
    );
  });
});

describe('legacy path normaliser', () => {
  const checkCanonical = (p: string) => {
    expect(p.startsWith('/')).toBe(true);
    expect(Buffer.byteLength(p, 'utf8')).toBeLessThanOrEqual(MAX_LEGACY_PATH_BYTES);
    expect(p.normalize('NFC')).toBe(p);
    expect(/[\u0000-\u001f\u007f-\u009f]/.test(p)).toBe(false);
    for (const seg of p.slice(1).split('/')) {
      expect(seg).not.toBe('');
      expect(seg).not.toBe('.');
      expect(seg).not.toBe('..');
      expect(Buffer.byteLength(seg, 'utf8')).toBeLessThanOrEqual(MAX_LEGACY_SEGMENT_BYTES);
    }
  };

  it('wire paths canonicalise to a path inside the root, idempotently, or are BAD_PATH', () => {
    fc.assert(
      fc.property(fc.oneof(messy, fc.tuple(nasty, fc.integer({ min: 1, max: 1200 })).map(([u, n]) => u.repeat(n))), (raw) => {
        const p = refusesOnlyWith(['UGCFS_ERR_BAD_PATH'], () => legacyPathFromUrl(raw));
        if (p === undefined) return;
        checkCanonical(p);
        expect(legacyPathFromName(p)).toBe(p);
      }),
      params,
    );
  });

  it('decoded names canonicalise the same way or are BAD_PATH', () => {
    fc.assert(
      fc.property(fc.oneof(messy, fc.string({ unit: 'binary', maxLength: 300 })), (name) => {
        const p = refusesOnlyWith(['UGCFS_ERR_BAD_PATH'], () => legacyPathFromName(name));
        if (p === undefined) return;
        checkCanonical(p);
        expect(legacyPathFromName(p)).toBe(p);
      }),
      params,
    );
  });
});

describe('needle decoder', () => {
  const meta = fc.record({
    key: fc.bigInt({ min: 0n, max: MAX_KEY }),
    cookie: fc.integer({ min: 0, max: 0xffffffff }),
    uploadTime: fc.integer({ min: 0, max: 2 ** 45 }),
    mime: fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
    owner: fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
  });

  it('never throws on arbitrary bytes, and anything it accepts passes its CRC', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(64), fc.option(fc.nat(4096), { nil: undefined }), (bytes, at, maxLen) => {
        const b = Buffer.from(bytes);
        const n = decodeNeedle(b, Math.min(at, b.length), maxLen);
        if (typeof n === 'string') expect(['magic', 'truncated', 'crc']).toContain(n);
        else expect(crc32c(n.data)).toBe(n.dataCrc);
      }),
      params,
    );
  });

  it('any single flipped bit inside a record is caught (magic, truncated or crc), never served as data', () => {
    fc.assert(
      fc.property(meta, fc.uint8Array({ maxLength: 300 }), fc.nat(), fc.nat(7), (m, data, pos, bit) => {
        const rec = encodeNeedle(m, data);
        const ok = decodeNeedle(rec);
        expect(typeof ok).toBe('object');
        // bytes past the CRC are alignment padding, which no reader looks at
        const covered = HEADER_SIZE + Buffer.byteLength(m.mime, 'latin1') + Buffer.byteLength(m.owner, 'latin1') + data.length + CRC_SIZE;
        const bad = Buffer.from(rec);
        const i = pos % covered;
        bad[i] = bad[i]! ^ (1 << bit);
        const n = decodeNeedle(bad);
        expect(typeof n, `flip at byte ${i} bit ${bit} decoded as a record`).toBe('string');
      }),
      params,
    );
  });

  it('a record cut short anywhere is truncated (or not a record), never a shorter file', () => {
    fc.assert(
      fc.property(meta, fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.nat(), (m, data, cutAt) => {
        const rec = encodeNeedle(m, data);
        const cut = rec.subarray(0, cutAt % rec.length);
        const n = decodeNeedle(cut);
        expect(typeof n).toBe('string');
      }),
      params,
    );
  });
});
