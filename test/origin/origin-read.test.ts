// The origin against a real cluster: uploads, originals, every variant spelling, EXIF
// orientation and GPS removal, HTTP caching semantics and joined concurrent misses.
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric } from '../helpers/metrics-scrape.ts';
import { corpus, http, startEnv, startOrigin, stopAll, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';

let env: Env;
let origin: string;
let jpeg: { fid: string; sha256: string; size: number };
let png: { fid: string };

beforeAll(async () => {
  env = await startEnv();
  const o = await startOrigin(env, ['--presets', JSON.stringify({ thumb: { w: 100, h: 100, fit: 'cover' }, card: { w: 240, fmt: 'webp', q: 70 } })]);
  origin = o.url;
  jpeg = await upload(origin, corpus('photos/Aqua.jpg')); // 2560x1600
  png = await upload(origin, corpus('photos/Spring.png')); // 1600x1200
});
afterAll(() => stopAll(env));

async function decoded(path: string, headers: Record<string, string> = {}) {
  const r = await http(origin + path, { headers });
  expect(r.status, `${path}: ${r.body.toString('utf8').slice(0, 200)}`).toBe(200);
  const meta = await sharp(r.body).metadata();
  return { r, meta };
}

describe('uploads', () => {
  it('answers 201 with the stored file described', async () => {
    const res = await http(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', ...UPLOAD_AUTH }, body: corpus('photos/Spring.png') });
    expect(res.status).toBe(201);
    const f = res.json().files[0];
    expect(f).toMatchObject({ mime: 'image/png', width: 1600, height: 1200 });
    expect(f.url).toBe(`${origin}/${f.fid}.png`);
    const got = await http(f.url);
    expect(got.body.length).toBe(f.size);
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(f.sha256);
  });

  it('takes several multipart file fields at once', async () => {
    const form = new FormData();
    form.append('file', new Blob([new Uint8Array(corpus('exif/f1-exif.jpg'))], { type: 'image/jpeg' }), 'a.jpg');
    form.append('note', 'ignored');
    form.append('file', new Blob([new Uint8Array(corpus('photos/wood-d.webp'))]), 'b.webp');
    const res = await fetch(`${origin}/upload`, { method: 'POST', headers: UPLOAD_AUTH, body: form });
    expect(res.status).toBe(201);
    const { files } = (await res.json()) as { files: Array<{ fid: string; mime: string; width: number; height: number }> };
    expect(files.map((f) => [f.mime, f.width, f.height])).toEqual([['image/jpeg', 40, 80], ['image/webp', 4096, 4096]]);
    for (const f of files) expect((await http(`${origin}/${f.fid}`)).status).toBe(200);
  });
});

describe('originals', () => {
  it('are served byte-exact as stored, with immutable caching and safe headers', async () => {
    const r = await http(`${origin}/${jpeg.fid}.jpg`);
    expect(r.status).toBe(200);
    expect(createHash('sha256').update(r.body).digest('hex')).toBe(jpeg.sha256);
    expect(r.headers).toMatchObject({
      'content-type': 'image/jpeg',
      'cache-control': 'public, max-age=31536000, immutable',
      'x-content-type-options': 'nosniff',
      'accept-ranges': 'bytes',
    });
    expect(r.headers['content-security-policy']).toContain("default-src 'none'");
    expect(r.headers.etag).toMatch(/^"[^"]+"$/);
    expect(Date.parse(r.headers['last-modified']!)).toBeGreaterThan(Date.now() - 600_000);
    const again = await http(`${origin}/${jpeg.fid}`);
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.headers.etag).toBe(r.headers.etag);
  });

  it('answer HEAD with the headers and no body', async () => {
    const r = await http(`${origin}/${jpeg.fid}.jpg`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(0);
    expect(Number(r.headers['content-length'])).toBe(jpeg.size);
    expect(r.headers.etag).toBeDefined();
  });

  it('answer Range with 206 and bad ranges with 416', async () => {
    const full = (await http(`${origin}/${jpeg.fid}`)).body;
    const r = await http(`${origin}/${jpeg.fid}`, { headers: { range: 'bytes=100-199' } });
    expect(r.status).toBe(206);
    expect(r.headers['content-range']).toBe(`bytes 100-199/${jpeg.size}`);
    expect(r.body.equals(full.subarray(100, 200))).toBe(true);
    const tail = await http(`${origin}/${jpeg.fid}`, { headers: { range: 'bytes=-16' } });
    expect(tail.body.equals(full.subarray(full.length - 16))).toBe(true);
    const bad = await http(`${origin}/${jpeg.fid}`, { headers: { range: `bytes=${jpeg.size}-` } });
    expect(bad.status).toBe(416);
    expect(bad.json().error.code).toBe('UGCFS_ERR_RANGE_NOT_SATISFIABLE');
    expect(bad.headers['content-range']).toBe(`bytes */${jpeg.size}`);
  });

  it('answer conditional requests with 304', async () => {
    const r = await http(`${origin}/${jpeg.fid}`);
    const inm = await http(`${origin}/${jpeg.fid}`, { headers: { 'if-none-match': r.headers.etag! } });
    expect(inm.status).toBe(304);
    expect(inm.body.length).toBe(0);
    expect(inm.headers.etag).toBe(r.headers.etag);
    const ims = await http(`${origin}/${jpeg.fid}`, { headers: { 'if-modified-since': r.headers['last-modified']! } });
    expect(ims.status).toBe(304);
    const stale = await http(`${origin}/${jpeg.fid}`, { headers: { 'if-none-match': '"something-else"' } });
    expect(stale.status).toBe(200);
    const v = await http(`${origin}/${jpeg.fid}?w=64`);
    expect((await http(`${origin}/${jpeg.fid}?w=64`, { headers: { 'if-none-match': v.headers.etag! } })).status).toBe(304);
    expect(v.headers.etag).not.toBe(r.headers.etag);
  });

  it('answer a missing file, or a wrong cookie, with a briefly cacheable 404', async () => {
    const wrongCookie = jpeg.fid.slice(0, 17) + (jpeg.fid.slice(17) === 'AAAA' ? 'BBBB' : 'AAAA');
    for (const path of [`/${wrongCookie}`, `/${wrongCookie}?w=100`, '/1AAAAAQAAAAAAAAAAAAAA.jpg', '/no/such/legacy.jpg']) {
      const r = await http(origin + path);
      expect(r.status, path).toBe(404);
      expect(r.json().error.code).toMatch(/^UGCFS_ERR_(NOT_FOUND|LEGACY_NOT_FOUND)$/);
      expect(r.headers['cache-control']).toBe('public, max-age=10');
    }
  });
});

describe('legacy paths', () => {
  it('serve a mapped old path like its fid, variants included', async () => {
    await env.cluster.client.legacySet('/uploads/2019/05/sea view.jpg', jpeg.fid);
    const orig = await http(`${origin}/uploads/2019/05/sea%20view.jpg`);
    expect(orig.status).toBe(200);
    expect(createHash('sha256').update(orig.body).digest('hex')).toBe(jpeg.sha256);
    expect(orig.headers.etag).toBe((await http(`${origin}/${jpeg.fid}`)).headers.etag);
    for (const [path, w, h, format] of [
      ['/uploads/2019/05/sea%20view.jpg_200x200.jpg', 200, 125, 'jpeg'],
      ['/uploads//2019/./05/sea%20view.jpg_200x200xz.jpg_.webp', 200, 200, 'webp'],
      ['/uploads/2019/05/sea%20view.jpg?w=100&fmt=png', 100, 63, 'png'],
    ] as const) {
      const { meta } = await decoded(path);
      expect([meta.format, meta.width, meta.height], path).toEqual([format, w, h]);
    }
    // The same variant by old path and by fid is one cache entry.
    const byFid = await http(`${origin}/${jpeg.fid}.jpg_200x200.jpg`);
    expect(byFid.headers['x-cache']).toBe('HIT');
  });
});

describe('variants', () => {
  const cases: Array<[string, string, number, number]> = [
    ['?w=400', 'jpeg', 400, 250],
    ['?w=400&h=400&fit=cover', 'jpeg', 400, 400],
    ['?w=300&h=300&fit=contain&fmt=png', 'png', 300, 300],
    ['?w=200&h=100&fit=fill&fmt=webp', 'webp', 200, 100],
    ['?w=200&h=200&fit=outside', 'jpeg', 320, 200],
    ['?w=200&h=200&fit=inside', 'jpeg', 200, 125],
    ['?w=200&dpr=2', 'jpeg', 400, 250],
    ['?h=100&fmt=avif', 'heif', 160, 100],
    ['?w=5000', 'jpeg', 2560, 1600],
    ['?q=30', 'jpeg', 2560, 1600],
    ['?preset=thumb', 'jpeg', 100, 100],
    ['?preset=card', 'webp', 240, 150],
    ['.jpg_400x400.jpg', 'jpeg', 400, 250],
    ['.jpg_400x400q90.jpg', 'jpeg', 400, 250],
    ['.jpg_400x400Q90.jpg', 'jpeg', 400, 250],
    ['.jpg_400x400xz.jpg', 'jpeg', 400, 400],
    ['.jpg_200x200.png', 'png', 200, 125],
    ['.jpg_q50.jpg', 'jpeg', 2560, 1600],
    ['.jpg_.webp', 'webp', 2560, 1600],
    ['.jpg_400x400q90.jpg_.webp', 'webp', 400, 250],
    ['_120x120.webp', 'webp', 120, 75],
  ];
  for (const [suffix, format, w, h] of cases) {
    it(`${suffix} -> ${format} ${w}x${h}`, async () => {
      const { r, meta } = await decoded(`/${jpeg.fid}${suffix}`);
      expect([meta.format, meta.width, meta.height]).toEqual([format, w, h]);
      expect(r.headers['content-type']).toBe(`image/${format === 'heif' ? 'avif' : format}`);
      expect(r.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(meta.exif).toBeUndefined();
    });
  }

  it('keeps the source format when none is asked for', async () => {
    const { meta } = await decoded(`/${png.fid}?w=160`);
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 160, 120]);
  });

  it('makes lower quality smaller', async () => {
    const q90 = await http(`${origin}/${jpeg.fid}.jpg_400x400q90.jpg`);
    const q20 = await http(`${origin}/${jpeg.fid}.jpg_400x400q20.jpg`);
    expect(q20.body.length).toBeLessThan(q90.body.length * 0.7);
  });

  it('shares one cache entry and ETag between spellings of the same output', async () => {
    const a = await http(`${origin}/${jpeg.fid}.jpg_300x300xz.webp`);
    const b = await http(`${origin}/${jpeg.fid}?fit=cover&w=300&h=300&fmt=webp`);
    expect(a.headers['x-cache']).toBe('MISS');
    expect(b.headers['x-cache']).toBe('HIT');
    expect(b.headers.etag).toBe(a.headers.etag);
    expect(b.body.equals(a.body)).toBe(true);
  });

  it('comes out upright for all 8 EXIF orientations (pixels compared to orientation 1)', async () => {
    const pixels = async (fid: string) => {
      const r = await http(`${origin}/${fid}?w=40&fmt=png`);
      expect(r.status).toBe(200);
      return sharp(r.body).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    };
    const fids: string[] = [];
    for (let i = 1; i <= 8; i++) fids.push((await upload(origin, corpus(`exif/f${i}-exif.jpg`))).fid);
    const ref = await pixels(fids[0]!);
    expect([ref.info.width, ref.info.height]).toEqual([40, 80]);
    const meanDiff = (a: Buffer, b: Buffer) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
    // The comparison itself must be able to fail: a mirrored image is far from upright.
    const mirrored = await sharp(ref.data, { raw: ref.info }).flop().raw().toBuffer();
    expect(meanDiff(ref.data, mirrored)).toBeGreaterThan(20);
    for (let i = 2; i <= 8; i++) {
      const got = await pixels(fids[i - 1]!);
      expect([got.info.width, got.info.height], `f${i}`).toEqual([40, 80]);
      expect(meanDiff(ref.data, got.data), `f${i}`).toBeLessThan(3);
    }
    // The original keeps only its orientation, so browsers show it upright too.
    const orig = await sharp((await http(`${origin}/${fids[5]}`)).body).metadata();
    expect([orig.orientation, orig.autoOrient.width, orig.autoOrient.height]).toEqual([6, 40, 80]);
    expect(orig.exif!.length).toBeLessThan(64);
  });

  it('never lets GPS or other EXIF out, in the original or a variant', async () => {
    const src = corpus('exif/geodegrees_as_string.jpg');
    // The GPS IFD pointer tag (0x8825) is in the source's EXIF, in its byte order.
    const gpsTag = (b: Buffer) => b.includes(Buffer.from([0x88, 0x25])) || b.includes(Buffer.from([0x25, 0x88]));
    expect(gpsTag((await sharp(src).metadata()).exif!)).toBe(true);
    const f = await upload(origin, src);
    for (const path of [`/${f.fid}`, `/${f.fid}.jpg`, `/${f.fid}?w=100`, `/${f.fid}.jpg_100x100.jpg_.webp`, `/${f.fid}?w=50&fmt=png`]) {
      const r = await http(origin + path);
      expect(r.status, path).toBe(200);
      const meta = await sharp(r.body).metadata();
      expect(meta.exif, path).toBeUndefined();
      expect(meta.xmp, path).toBeUndefined();
      expect(r.body.includes(Buffer.from('Exif\0\0', 'latin1')), path).toBe(false);
      expect(gpsTag(r.body.subarray(0, 4096)) && r.body.includes(Buffer.from('Exif')), path).toBe(false);
    }
  });

  it('re-encodes containers it cannot strip losslessly (AVIF with EXIF)', async () => {
    const avif = await sharp(corpus('photos/Aqua.jpg')).resize(200).withExif({ IFD0: { Copyright: 'maker-secret-42' } }).avif().toBuffer();
    expect((await sharp(avif).metadata()).exif).toBeDefined();
    const f = await upload(origin, avif);
    const r = await http(`${origin}/${f.fid}`);
    expect(r.headers['content-type']).toBe('image/avif');
    expect((await sharp(r.body).metadata()).exif).toBeUndefined();
    expect(r.body.includes(Buffer.from('maker-secret-42'))).toBe(false);
  });

  it('answers HEAD of a variant not yet cached with its length', async () => {
    const h = await http(`${origin}/${jpeg.fid}?w=77`, { method: 'HEAD' });
    const g = await http(`${origin}/${jpeg.fid}?w=77`);
    expect([h.status, h.body.length, h.headers['x-cache']]).toEqual([200, 0, 'MISS']);
    expect(Number(h.headers['content-length'])).toBe(g.body.length);
  });

  it('computes identical concurrent misses once', async () => {
    const before = await metric(origin, 'ugcfs_resizes_total', {}, { sum: true });
    const joinedBefore = await metric(origin, 'ugcfs_cache_lookups_total', { tier: 'inflight' }, { sum: true });
    const rs = await Promise.all(Array.from({ length: 8 }, () => http(`${origin}/${jpeg.fid}?w=333&h=222&fit=cover&fmt=webp`)));
    expect(rs.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(new Set(rs.map((r) => r.headers.etag)).size).toBe(1);
    expect(rs.every((r) => r.body.equals(rs[0]!.body))).toBe(true);
    expect((await metric(origin, 'ugcfs_resizes_total', {}, { sum: true })) - before).toBe(1);
    expect((await metric(origin, 'ugcfs_cache_lookups_total', { tier: 'inflight' }, { sum: true })) - joinedBefore).toBeGreaterThan(0);
  });
});
