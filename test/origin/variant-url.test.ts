import { describe, expect, it } from 'vitest';
import { isUgcfsError } from '../../src/base/errors.ts';
import { parsePresets } from '../../origin/presets.ts';
import { parseTarget, resolveVariant, variantFromKey, type ResolveOptions } from '../../origin/variant-url.ts';

const FID = '1AAAAAQAAAAAAAAGWdoQ4';
const opts: Omit<ResolveOptions, 'accept'> = {
  presets: parsePresets({ thumb: { w: 100, h: 100, fit: 'cover' }, card: { w: 300, fmt: 'webp', q: 70 } }),
  strict: false,
  allowedSizes: new Set(),
  maxOutputPixels: 25_000_000,
  negotiate: false,
};

function key(url: string, extra: Partial<ResolveOptions> = {}): string {
  const t = parseTarget(url);
  if (!t.spec) return 'original';
  return resolveVariant(t.spec, { ...opts, accept: undefined, ...extra }).key;
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isUgcfsError(err)) return err.code;
    throw err;
  }
  return 'no error';
}

describe('variant URL grammar', () => {
  it('treats a bare fid and any extension as the original', () => {
    expect(parseTarget(`/${FID}`)).toMatchObject({ kind: 'fid', id: FID, spec: undefined });
    expect(parseTarget(`/${FID}.jpg`)).toMatchObject({ kind: 'fid', id: FID, spec: undefined });
    expect(parseTarget(`/${FID}.webp`).spec).toBeUndefined();
  });

  it('gives every spelling of the same output one canonical key', () => {
    const cover = key(`/${FID}?w=400&h=400&fit=cover&fmt=jpeg`);
    expect(key(`/${FID}.jpg_400x400xz.jpg`)).toBe(cover);
    expect(key(`/${FID}?fit=cover&h=400&fmt=jpeg&w=400`)).toBe(cover);
    expect(key(`/${FID}?w=200&h=200&fit=cover&fmt=jpeg&dpr=2`)).toBe(cover);
    expect(key(`/${FID}?w=400&h=400&fit=cover&fmt=jpeg&q=80`)).toBe(cover);
    const inside = key(`/${FID}?w=400&h=400&fmt=jpeg&q=90`);
    expect(key(`/${FID}.jpg_400x400q90.jpg`)).toBe(inside);
    expect(key(`/${FID}.jpg_400x400Q90.jpg`)).toBe(inside);
    expect(key(`/${FID}_400x400q90.jpg`)).toBe(inside);
    expect(key(`/${FID}.jpg_400x400q90.jpg_.webp`)).toBe(key(`/${FID}?w=400&h=400&fmt=webp&q=90`));
    expect(key(`/${FID}.jpg_q50.jpg`)).toBe(key(`/${FID}?q=50&fmt=jpeg`));
    expect(key(`/${FID}.jpg_.webp`)).toBe(key(`/${FID}?fmt=webp`));
    expect(key(`/${FID}?preset=thumb`)).toBe(key(`/${FID}?w=100&h=100&fit=cover`));
    expect(key(`/${FID}?preset=card`)).toBe(key(`/${FID}?w=300&fmt=webp&q=70`));
    expect(key(`/${FID}?w=400&h=400&fmt=png&q=10`)).toBe(key(`/${FID}.jpg_400x400.png`));
    expect(key(`/${FID}?w=400`)).not.toBe(key(`/${FID}?w=401`));
  });

  it('rebuilds a variant from its key', () => {
    const k = key(`/${FID}.jpg_400x300xz.webp`);
    expect(variantFromKey(k, false)).toMatchObject({ w: 400, h: 300, fit: 'cover', fmt: 'webp', key: k });
    expect(code(() => variantFromKey('400x300.cover.gif.q1', false))).toBe('UGCFS_ERR_BAD_PARAM');
  });

  it('refuses unknown parameters and out-of-range values with BAD_PARAM', () => {
    for (const q of ['w=0', 'w=99999', 'w=-1', 'w=1e3', 'w=abc', 'h=8193', 'q=0', 'q=101', 'q=1000000000000', 'fit=stretch', 'fmt=bmp', 'fmt=gif', 'dpr=4', 'dpr=0.5', 'foo=1', 'w=', 'w=10&w=20', 'preset=nope', 'preset=../x']) {
      expect(code(() => key(`/${FID}?${q}`)), q).toBe('UGCFS_ERR_BAD_PARAM');
    }
    for (const s of ['.jpg_0x400.jpg', '.jpg_400x99999.jpg', '.jpg_400x400q0.jpg', '.jpg_400x400q101.jpg', '.jpg_400x400.bmp', '.jpg_q500.jpg', '.jpg.exe.zip']) {
      expect(code(() => key(`/${FID}${s}`)), s).toBe('UGCFS_ERR_BAD_PARAM');
    }
    expect(code(() => key(`/${FID}.jpg_400x400.jpg?w=100`))).toBe('UGCFS_ERR_BAD_PARAM');
  });

  it('refuses outputs beyond the pixel limit', () => {
    expect(code(() => key(`/${FID}?w=8000&h=8000&dpr=2`))).toBe('UGCFS_ERR_OUTPUT_TOO_LARGE');
    expect(code(() => key(`/${FID}?w=8000&h=8000`, { maxOutputPixels: 1_000_000 }))).toBe('UGCFS_ERR_OUTPUT_TOO_LARGE');
  });

  it('in strict mode allows presets and whitelisted sizes only', () => {
    const strict = { strict: true, allowedSizes: new Set(['400x400', '200x']) };
    expect(key(`/${FID}?preset=thumb`, strict)).toBe(key(`/${FID}?preset=thumb`));
    expect(key(`/${FID}.jpg_400x400.jpg`, strict)).toBe(key(`/${FID}?w=400&h=400&fmt=jpeg`));
    expect(key(`/${FID}?w=200&dpr=2`, strict)).toBe(key(`/${FID}?w=400`));
    expect(code(() => key(`/${FID}?w=401&h=400`, strict))).toBe('UGCFS_ERR_NOT_ALLOWED');
    expect(code(() => key(`/${FID}?preset=thumb&w=999`, strict))).toBe('UGCFS_ERR_NOT_ALLOWED');
    expect(code(() => key(`/${FID}?w=200&dpr=1.5`, strict))).toBe('UGCFS_ERR_NOT_ALLOWED');
  });

  it('negotiates a format from Accept only when asked, and says so', () => {
    const t = parseTarget(`/${FID}?w=100`).spec!;
    const neg = { ...opts, negotiate: true };
    expect(resolveVariant(t, { ...neg, accept: 'image/avif,image/webp,*/*' })).toMatchObject({ fmt: 'avif', negotiated: true });
    expect(resolveVariant(t, { ...neg, accept: 'image/webp,*/*' })).toMatchObject({ fmt: 'webp', negotiated: true });
    expect(resolveVariant(t, { ...neg, accept: 'image/avif;q=0, image/webp' })).toMatchObject({ fmt: 'webp' });
    expect(resolveVariant(t, { ...neg, accept: '*/*' })).toMatchObject({ fmt: 'auto', negotiated: true });
    expect(resolveVariant(t, { ...opts, accept: 'image/webp' })).toMatchObject({ fmt: 'auto', negotiated: false });
    // An explicit format is never overridden.
    expect(resolveVariant(parseTarget(`/${FID}?w=100&fmt=png`).spec!, { ...neg, accept: 'image/avif' })).toMatchObject({ fmt: 'png', negotiated: false });
  });

  it('parses legacy paths with the same suffix grammar and canonical paths', () => {
    expect(parseTarget('/uploads/2019/05/a.jpg')).toMatchObject({ kind: 'legacy', id: '/uploads/2019/05/a.jpg', spec: undefined });
    const t = parseTarget('/uploads//2019/./05/a%20b.jpg_400x400q90.jpg_.webp');
    expect(t).toMatchObject({ kind: 'legacy', id: '/uploads/2019/05/a b.jpg' });
    expect(resolveVariant(t.spec!, { ...opts, accept: undefined }).key).toBe(key(`/${FID}?w=400&h=400&q=90&fmt=webp`));
    // A plain name that merely looks like a suffix stays a name.
    expect(parseTarget('/photo_100x100.jpg')).toMatchObject({ id: '/photo_100x100.jpg', spec: undefined });
    expect(parseTarget('/T1FOZHB4ET1RCvBVdK.jpg_q50.jpg')).toMatchObject({ id: '/T1FOZHB4ET1RCvBVdK.jpg', spec: { q: 50, fmt: 'jpeg' } });
    expect(code(() => parseTarget('/../../etc/passwd'))).toBe('UGCFS_ERR_BAD_PATH');
    expect(code(() => parseTarget('/' + 'a'.repeat(10_000)))).toBe('UGCFS_ERR_BAD_PATH');
    expect(code(() => parseTarget('/a/' + 'b/'.repeat(600) + 'c.jpg'))).toBe('UGCFS_ERR_BAD_PATH');
  });

  it('separates the signature from what it signs', () => {
    const t = parseTarget(`/${FID}.jpg_400x400.jpg?sig=abc`);
    expect(t.sig).toBe('abc');
    expect(t.signed).toBe(`/${FID}.jpg_400x400.jpg`);
    expect(parseTarget(`/${FID}?w=1&sig=x&h=2`).signed).toBe(`/${FID}?w=1&h=2`);
  });

  it('keeps the keys Taobao suffix URLs had before the image operations', () => {
    // Literal keys: the disk caches, peers and CDNs of running origins hold entries (and
    // ETags) under these.
    expect(key(`/${FID}.jpg_400x400xz.jpg`)).toBe('400x400.cover.jpeg.q80');
    expect(key(`/${FID}.jpg_400x400q90.jpg`)).toBe('400x400.inside.jpeg.q90');
    expect(key(`/${FID}.jpg_400x400q90.jpg_.webp`)).toBe('400x400.inside.webp.q90');
    expect(key(`/${FID}.jpg_q50.jpg`)).toBe('0x0.inside.jpeg.q50');
    expect(key(`/${FID}.jpg_.webp`)).toBe('0x0.inside.webp.q80');
    expect(key(`/${FID}_120x90xzQ70.png`)).toBe('120x90.cover.png.q0');
    expect(parseTarget('/uploads/a.jpg_400x400xz.jpg').spec).toEqual({ w: 400, h: 400, fit: 'cover', fmt: 'jpeg' });
    expect(key(`/${FID}?w=400&h=300`)).toBe('400x300.inside.auto.q0');
  });

  it('puts gravity, blur and sharpen in the key only when they change the output', () => {
    const cover = `/${FID}?w=400&h=400&fit=cover&fmt=jpeg`;
    expect(key(`${cover}&gravity=attention`)).toBe('400x400.cover.jpeg.q80.g-attention');
    expect(key(`${cover}&gravity=entropy`)).toBe('400x400.cover.jpeg.q80.g-entropy');
    expect(key(`${cover}&gravity=northeast`)).toBe('400x400.cover.jpeg.q80.g-northeast');
    expect(key(`${cover}&gravity=center`)).toBe(key(cover));
    // a box with a free side is not cropped, so no gravity moves anything
    expect(key(`/${FID}?w=400&fit=cover&gravity=attention`)).toBe(key(`/${FID}?w=400&fit=cover`));
    expect(key(`${cover}&blur=2.50`)).toBe('400x400.cover.jpeg.q80.blur2.5');
    expect(key(`${cover}&blur=0.3`)).toBe('400x400.cover.jpeg.q80.blur0.3');
    expect(key(`${cover}&sharpen=1`)).toBe('400x400.cover.jpeg.q80.sharpen');
    expect(key(`${cover}&sharpen=1&blur=100&gravity=west`)).toBe('400x400.cover.jpeg.q80.g-west.blur100.sharpen');
    expect(key(`/${FID}.jpg_400x400xz.jpg`)).toBe(key(`${cover}&gravity=center`));
    const presets = parsePresets({ smart: { w: 200, h: 200, fit: 'cover', gravity: 'attention', sharpen: 1 } });
    expect(key(`/${FID}?preset=smart`, { presets })).toBe('200x200.cover.auto.q0.g-attention.sharpen');
    expect(key(`/${FID}?preset=smart&blur=1`, { presets })).toBe('200x200.cover.auto.q0.g-attention.blur1.sharpen');
  });

  it('refuses gravity without fit=cover and out-of-range operations', () => {
    for (const q of ['w=1&h=1&gravity=north', 'w=1&h=1&fit=contain&gravity=north', 'fit=inside&gravity=attention', 'w=1&h=1&fit=cover&gravity=top', 'w=1&h=1&fit=cover&gravity=CENTER', 'w=1&blur=0', 'w=1&blur=0.29', 'w=1&blur=100.01', 'w=1&blur=1.234', 'w=1&blur=-1', 'w=1&blur=.5', 'w=1&blur=1e2', 'w=1&blur=', 'w=1&sharpen=0', 'w=1&sharpen=true', 'w=1&sharpen=', 'w=1&watermark=x', 'w=1&blur=1&blur=2']) {
      expect(code(() => key(`/${FID}?${q}`)), q).toBe('UGCFS_ERR_BAD_PARAM');
    }
    // a preset's gravity with a fit the URL changed
    const presets = parsePresets({ smart: { w: 200, h: 200, fit: 'cover', gravity: 'attention' } });
    expect(code(() => key(`/${FID}?preset=smart&fit=inside`, { presets }))).toBe('UGCFS_ERR_BAD_PARAM');
  });

  it('rebuilds operations from a key and refuses keys it could not have made', () => {
    const presets = parsePresets({ wm: { w: 300, h: 300, fit: 'cover', gravity: 'entropy', blur: 1.5, sharpen: 1, watermark: { fid: FID, position: 'northwest', opacity: 0.35, scale: 0.125 } } });
    const t = parseTarget(`/${FID}?preset=wm`).spec!;
    const v = resolveVariant(t, { ...opts, presets, accept: undefined });
    expect(v.key).toBe(`300x300.cover.auto.q0.g-entropy.blur1.5.sharpen.wm-${FID}-northwest-o0.35-s0.125`);
    expect(variantFromKey(v.key, false)).toEqual(v);
    for (const bad of [
      '300x300.cover.auto.q0.g-center', // center is never written
      '300x0.cover.auto.q0.g-north', // nor a gravity that crops nothing
      '300x300.inside.auto.q0.g-north',
      '300x300.cover.auto.q0.blur1.50', // not canonical
      '300x300.cover.auto.q0.blur0.2',
      '300x300.cover.auto.q0.blur101',
      '300x300.cover.auto.q0.sharpen.blur1', // out of order
      `300x300.cover.auto.q0.wm-${FID}-northwest-o1.5-s0.1`,
      `300x300.cover.auto.q0.wm-${FID}-northwest-o1-s0`,
      `300x300.cover.auto.q0.wm-${FID}-left-o1-s0.1`,
      `300x300.cover.auto.q0.wm-${FID.slice(1)}-north-o1-s0.1`,
    ]) {
      expect(code(() => variantFromKey(bad, false)), bad).toBe('UGCFS_ERR_BAD_PARAM');
    }
  });

  it('takes watermarks from presets only, checked at startup', () => {
    const p = parsePresets({ wm: { w: 100, watermark: { fid: FID } } });
    expect(p.get('wm')!.watermark).toEqual({ fid: FID, position: 'southeast', opacity: 1, scale: 0.2 });
    for (const wm of [{}, { fid: 'nope' }, { fid: FID, position: 'attention' }, { fid: FID, opacity: 1.5 }, { fid: FID, opacity: -0.1 }, { fid: FID, scale: 0 }, { fid: FID, scale: 1.01 }, { fid: FID, size: 3 }, 'x', [FID]]) {
      expect(code(() => parsePresets({ wm: { w: 100, watermark: wm } })), JSON.stringify(wm)).toBe('UGCFS_ERR_BAD_USAGE');
    }
    expect(code(() => parsePresets({ g: { w: 100, h: 100, gravity: 'attention' } }))).toBe('UGCFS_ERR_BAD_USAGE');
    expect(parsePresets({ s: { w: 100, sharpen: true } }).get('s')!.sharpen).toBe(true);
    expect(code(() => parsePresets({ s: { w: 100, sharpen: false } }))).toBe('UGCFS_ERR_BAD_USAGE');
  });

  it('validates presets at startup', () => {
    expect(code(() => parsePresets({ big: { w: 99999 } }))).toBe('UGCFS_ERR_BAD_USAGE');
    expect(code(() => parsePresets({ x: { size: 1 } }))).toBe('UGCFS_ERR_BAD_USAGE');
    expect(code(() => parsePresets([1]))).toBe('UGCFS_ERR_BAD_USAGE');
  });
});
