// Property tests of the image operations' grammar: any mix of gravity, blur, sharpen (and a
// preset's watermark) with sizes and fits either resolves to a variant whose key rebuilds
// exactly that variant, or is refused with BAD_PARAM; equal outputs share one key.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UgcfsError } from '../../src/base/errors.ts';
import { GRAVITIES, MAX_BLUR, MIN_BLUR } from '../../origin/image-ops.ts';
import { parsePresets } from '../../origin/presets.ts';
import { parseTarget, resolveVariant, variantFromKey, type ResolveOptions } from '../../origin/variant-url.ts';

const FID = '1AAAAAQAAAAAAAAGWdoQ4';
const RUNS = Number(process.env.UGCFS_FUZZ_RUNS ?? 1000);
const opts: ResolveOptions = {
  presets: parsePresets({
    smart: { w: 300, h: 300, fit: 'cover', gravity: 'attention' },
    mark: { w: 400, fit: 'inside', watermark: { fid: FID, position: 'northeast', opacity: 0.45, scale: 0.3 } },
  }),
  strict: false,
  allowedSizes: new Set(),
  maxOutputPixels: 25_000_000,
  negotiate: false,
  accept: undefined,
};

const blurText = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 10_050 }), fc.constantFrom(0, 1, 2)).map(([n, places]) => (n / 100).toFixed(places)),
  fc.constantFrom('0.3', '0.29', '100', '100.0', '100.01', '1.234', '-1', '1e1', '.5', '5.', 'abc', ''),
);
const param = fc.oneof(
  fc.constantFrom('w=200', 'h=150', 'w=1', 'fit=cover', 'fit=inside', 'fit=fill', 'fmt=png', 'q=70', 'dpr=2', 'preset=smart', 'preset=mark'),
  fc.constantFrom(...GRAVITIES, 'CENTER', 'top', '').map((g) => `gravity=${g}`),
  blurText.map((b) => `blur=${b}`),
  fc.constantFrom('1', '0', 'true', '2', '').map((s) => `sharpen=${s}`),
);

describe('image operations grammar', () => {
  it('resolves or refuses with BAD_PARAM; keys rebuild the variant exactly', () => {
    fc.assert(
      fc.property(fc.uniqueArray(param, { maxLength: 6, selector: (p) => p.split('=')[0] }), (pairs) => {
        let v;
        try {
          const t = parseTarget(`/${FID}?${pairs.join('&')}`);
          if (!t.spec) return;
          v = resolveVariant(t.spec, opts);
        } catch (err) {
          expect(err).toBeInstanceOf(UgcfsError);
          expect((err as UgcfsError).code).toBe('UGCFS_ERR_BAD_PARAM');
          return;
        }
        if (v.blur !== undefined) expect(v.blur >= MIN_BLUR && v.blur <= MAX_BLUR).toBe(true);
        if (v.gravity !== undefined) expect(v.fit === 'cover' && v.w > 0 && v.h > 0 && v.gravity !== 'center').toBe(true);
        expect(variantFromKey(v.key, false)).toEqual(v);
        // the same output spelled with the parameters in another order has the same key
        const again = resolveVariant(parseTarget(`/${FID}?${[...pairs].reverse().join('&')}`).spec!, opts);
        expect(again.key).toBe(v.key);
      }),
      { numRuns: RUNS },
    );
  });

  it('a watermark comes only from the preset, and the URL cannot remove it', () => {
    fc.assert(
      fc.property(fc.uniqueArray(param, { maxLength: 5, selector: (p) => p.split('=')[0] }), (pairs) => {
        let v;
        try {
          v = resolveVariant(parseTarget(`/${FID}?${[...pairs.filter((p) => !p.startsWith('preset=')), 'preset=mark'].join('&')}`).spec!, opts);
        } catch (err) {
          expect((err as UgcfsError).code).toBe('UGCFS_ERR_BAD_PARAM');
          return;
        }
        expect(v.watermark).toEqual({ fid: FID, position: 'northeast', opacity: 0.45, scale: 0.3 });
        expect(v.key.endsWith(`.wm-${FID}-northeast-o0.45-s0.3`)).toBe(true);
      }),
      { numRuns: RUNS },
    );
  });
});
