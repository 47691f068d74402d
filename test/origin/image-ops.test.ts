// Image operations on real origins over a real cluster, checked by their pixels: where a
// gravity crop goes (compass, attention, entropy; compared with sharp's own output and by
// where the subject lands), blur and sharpen (edge energy), watermark presets (the overlay's
// corner pixels, blended at the preset's opacity, on an origin with --workers 2), refusals,
// and Taobao suffix URLs that keep their keys and ETags.
//
// UGCFS_WRITE_DOC_IMAGES=1 also writes the pictures of docs/ORIGIN.md ("Image operations")
// from these origins' answers into docs/images/.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid, encodeFid } from '../../src/wire/file-id.ts';
import { ROOT, run, type Proc } from '../helpers/proc.ts';
import { corpus, http, rawRequest, startEnv, startOrigin, stopAll, upload, type Env } from './origin-env.ts';

const WRITE_DOCS = process.env.UGCFS_WRITE_DOC_IMAGES === '1';
const DOC_IMAGES = join(ROOT, 'docs', 'images');

interface Pixels {
  data: Buffer;
  width: number;
  height: number;
}

/** Decoded RGB pixels (alpha dropped). */
async function pixels(bytes: Buffer | Sharp): Promise<Pixels> {
  const img = Buffer.isBuffer(bytes) ? sharp(bytes) : bytes;
  const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height };
}

function at(p: Pixels, x: number, y: number): [number, number, number] {
  const i = (y * p.width + x) * 3;
  return [p.data[i]!, p.data[i + 1]!, p.data[i + 2]!];
}

function meanAbsDiff(a: Pixels, b: Pixels): number {
  expect([a.width, a.height]).toEqual([b.width, b.height]);
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i]! - b.data[i]!);
  return sum / a.data.length;
}

/** Mean x of the ladybird's red pixels. */
function redCentroidX(p: Pixels): number {
  let n = 0;
  let sx = 0;
  for (let y = 0; y < p.height; y++) {
    for (let x = 0; x < p.width; x++) {
      const [r, g, b] = at(p, x, y);
      if (r > 150 && g < 90 && b < 90) { n++; sx += x; }
    }
  }
  expect(n).toBeGreaterThan(20);
  return sx / n;
}

/** Mean absolute difference between horizontal neighbours: what blur lowers and sharpen raises. */
function edgeEnergy(p: Pixels): number {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < p.height; y++) {
    for (let x = 1; x < p.width; x++) {
      const i = (y * p.width + x) * 3;
      for (let c = 0; c < 3; c++) sum += Math.abs(p.data[i + c]! - p.data[i + c - 3]!);
      n += 3;
    }
  }
  return sum / n;
}

function docImage(name: string, bytes: Buffer): void {
  if (!WRITE_DOCS) return;
  expect(bytes.length).toBeLessThan(30 * 1024);
  mkdirSync(DOC_IMAGES, { recursive: true });
  writeFileSync(join(DOC_IMAGES, name), bytes);
}

let env: Env;
let plain: Proc;
let marked: Proc;
let ladybird: string;
let garden: string;
let red: string;
let spring: string;
let ghost: string;

// A 64x32 opaque red PNG: its blend with the picture under it is exact arithmetic.
const RED = () => sharp({ create: { width: 64, height: 32, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 1 } } }).png().toBuffer();

beforeAll(async () => {
  env = await startEnv();
  plain = await startOrigin(env);
  ladybird = (await upload(plain.url, corpus('photos/LadyBird.jpg'))).fid;
  garden = (await upload(plain.url, corpus('photos/Garden.jpg'))).fid;
  red = (await upload(plain.url, await RED())).fid;
  // The white waves of Spring.png without its transparent margins: a wide, logo-like band.
  spring = (await upload(plain.url, await sharp(corpus('photos/Spring.png')).trim().png().toBuffer())).fid;
  // A well-formed fid of no file: the overlay's own with another cookie.
  const f = decodeFid(red);
  ghost = encodeFid({ block: f.block, key: f.key, cookie: (f.cookie + 1) >>> 0 });
  const presets = {
    mark: { w: 400, h: 300, fit: 'cover', fmt: 'png', watermark: { fid: red, position: 'southeast', opacity: 0.5, scale: 0.25 } },
    corner: { w: 400, h: 300, fit: 'cover', fmt: 'png', watermark: { fid: red, position: 'northwest', opacity: 1, scale: 0.1 } },
    logo: { w: 360, h: 225, fit: 'cover', fmt: 'jpeg', q: 70, watermark: { fid: spring, position: 'southeast', opacity: 0.9, scale: 0.5 } },
    gone: { w: 100, watermark: { fid: ghost } },
  };
  marked = await startOrigin(env, ['--workers', '2', '--presets', JSON.stringify(presets)]);
}, 180_000);
afterAll(() => stopAll(env));

describe('gravity', () => {
  it('crops where sharp does, and attention finds the off-centre subject', async () => {
    const src = corpus('photos/LadyBird.jpg');
    const crops: Record<string, Pixels> = {};
    const etags = new Set<string>();
    const strategies = { center: 'centre', attention: sharp.strategy.attention, entropy: sharp.strategy.entropy } as const;
    for (const [g, position] of Object.entries(strategies)) {
      const r = await http(`${plain.url}/${ladybird}?w=200&h=200&fit=cover&gravity=${g}&fmt=png`);
      expect(r.status).toBe(200);
      etags.add(r.headers.etag!);
      crops[g] = await pixels(r.body);
      const own = await pixels(sharp(src).autoOrient().resize({ width: 200, height: 200, fit: 'cover', position, withoutEnlargement: true }).toColourspace('srgb'));
      expect(meanAbsDiff(crops[g]!, own), g).toBeLessThan(1);
    }
    expect(etags.size).toBe(3);
    // The ladybird sits right of the photo's centre: a centred crop keeps it near its right
    // edge, attention brings it to the middle.
    expect(redCentroidX(crops.center!)).toBeGreaterThan(140);
    expect(Math.abs(redCentroidX(crops.attention!) - 100)).toBeLessThan(20);
    expect(meanAbsDiff(crops.entropy!, crops.center!)).toBeGreaterThan(5);
    // center is where a crop goes anyway: the same entry and ETag as no gravity.
    const none = await http(`${plain.url}/${ladybird}?w=200&h=200&fit=cover&fmt=png`);
    const center = await http(`${plain.url}/${ladybird}?fmt=png&gravity=center&w=200&fit=cover&h=200`);
    expect(center.headers.etag).toBe(none.headers.etag);
    expect(center.headers['x-cache']).toBe('HIT');

    for (const [g, q] of [['source', 'w=360&fmt=jpeg&q=70'], ['center', 'w=200&h=200&fit=cover&fmt=jpeg&q=75'], ['attention', 'w=200&h=200&fit=cover&gravity=attention&fmt=jpeg&q=75'], ['entropy', 'w=200&h=200&fit=cover&gravity=entropy&fmt=jpeg&q=75']] as const) {
      if (WRITE_DOCS) docImage(`gravity-${g}.jpg`, (await http(`${plain.url}/${ladybird}?${q}`)).body);
    }
  });

  it('compass gravities keep that side of the picture', async () => {
    // A 2560x1600 photo cropped to a square: west keeps its left edge, east its right.
    const whole = await pixels(sharp(corpus('photos/Garden.jpg')).resize({ width: 320, height: 200 }));
    const west = await pixels((await http(`${plain.url}/${garden}?w=200&h=200&fit=cover&gravity=west&fmt=png`)).body);
    const east = await pixels((await http(`${plain.url}/${garden}?w=200&h=200&fit=cover&gravity=east&fmt=png`)).body);
    const column = (p: Pixels, x: number) => Array.from({ length: p.height }, (_, y) => at(p, x, y)).flat();
    const dist = (a: number[], b: number[]) => a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
    expect(dist(column(west, 0), column(whole, 0))).toBeLessThan(8);
    expect(dist(column(east, 199), column(whole, 319))).toBeLessThan(8);
    expect(dist(column(west, 0), column(east, 0))).toBeGreaterThan(20);
  });
});

describe('blur and sharpen', () => {
  it('change the pixels and the ETag; blur softens, sharpen hardens', async () => {
    const base = `${plain.url}/${garden}?w=400&h=250&fit=cover&fmt=png`;
    const [plainR, blurR, sharpR, blurAgain] = await Promise.all([http(base), http(`${base}&blur=3`), http(`${base}&sharpen=1`), http(`${base}&blur=3.00`)]);
    for (const r of [plainR, blurR, sharpR]) expect(r.status).toBe(200);
    expect(new Set([plainR.headers.etag, blurR.headers.etag, sharpR.headers.etag]).size).toBe(3);
    expect(blurAgain.headers.etag).toBe(blurR.headers.etag);
    const [p, b, s] = await Promise.all([pixels(plainR.body), pixels(blurR.body), pixels(sharpR.body)]);
    expect(edgeEnergy(b)).toBeLessThan(edgeEnergy(p) * 0.7);
    expect(edgeEnergy(s)).toBeGreaterThan(edgeEnergy(p) * 1.05);
    // what sharp itself makes of the same steps
    const own = await pixels(sharp(corpus('photos/Garden.jpg')).resize({ width: 400, height: 250, fit: 'cover', withoutEnlargement: true }).blur(3).toColourspace('srgb'));
    expect(meanAbsDiff(b, own)).toBeLessThan(1);
    if (WRITE_DOCS) {
      for (const [name, q] of [['plain', ''], ['blur', '&blur=3'], ['sharpen', '&sharpen=1']] as const) {
        docImage(`filter-${name}.jpg`, (await http(`${plain.url}/${garden}?w=240&h=240&fit=cover&gravity=attention&fmt=jpeg&q=75${q}`)).body);
      }
    }
  });
});

describe('watermark presets', () => {
  it('put the overlay where the preset says, at its opacity and scale, in every worker', async () => {
    const under = await pixels((await http(`${marked.url}/${garden}?w=400&h=300&fit=cover&fmt=png`)).body);
    for (let i = 0; i < 2; i++) {
      // A new connection each: the pool's round robin hands them to both workers, whose
      // caches are their own, so each loads the overlay and composes (both MISS).
      const r = await rawRequest(marked.url, `/${garden}?preset=mark`, { localAddress: '127.0.0.1' });
      expect([r.status, r.headers['x-cache']]).toEqual([200, 'MISS']);
      const p = await pixels(r.body);
      expect([p.width, p.height]).toEqual([400, 300]);
      // scale 0.25 of 400 px: the 64x32 overlay becomes 100x50, flush with the bottom right.
      for (const [x, y] of [[399, 299], [300, 250], [350, 270], [300, 299], [399, 250]]) {
        const [r0, g0, b0] = at(under, x!, y!);
        const [r1, g1, b1] = at(p, x!, y!);
        expect(Math.abs(r1 - (255 + r0) / 2), `red at ${x},${y}`).toBeLessThanOrEqual(2);
        expect(Math.abs(g1 - g0 / 2), `green at ${x},${y}`).toBeLessThanOrEqual(2);
        expect(Math.abs(b1 - b0 / 2), `blue at ${x},${y}`).toBeLessThanOrEqual(2);
      }
      for (const [x, y] of [[299, 299], [399, 249], [0, 0], [200, 150]]) expect(at(p, x!, y!), `untouched at ${x},${y}`).toEqual(at(under, x!, y!));
    }
    const corner = await pixels((await http(`${marked.url}/${garden}?preset=corner`)).body);
    // scale 0.1: 40x20 at the top left, opaque.
    for (const [x, y] of [[0, 0], [39, 19], [20, 10]]) expect(at(corner, x!, y!)).toEqual([255, 0, 0]);
    expect(at(corner, 40, 10)).toEqual(at(under, 40, 10));
    expect(at(corner, 10, 20)).toEqual(at(under, 10, 20));
    if (WRITE_DOCS) {
      docImage('watermark-before.jpg', (await http(`${marked.url}/${garden}?w=360&h=225&fit=cover&fmt=jpeg&q=70`)).body);
      docImage('watermark-after.jpg', (await http(`${marked.url}/${garden}?preset=logo`)).body);
      docImage('watermark-mark.jpg', (await http(`${marked.url}/${garden}?preset=mark&fmt=jpeg&q=70&w=360&h=270`)).body);
    }
  });

  it('name the overlay in the key: its own ETag, never the plain variant\'s', async () => {
    const [a, b, c] = await Promise.all([
      http(`${marked.url}/${garden}?preset=mark`),
      http(`${marked.url}/${garden}?preset=corner`),
      http(`${marked.url}/${garden}?w=400&h=300&fit=cover&fmt=png`),
    ]);
    expect(new Set([a.headers.etag, b.headers.etag, c.headers.etag]).size).toBe(3);
    // The URL may change the size of a watermarked preset, not drop its overlay.
    const bigger = await pixels((await http(`${marked.url}/${garden}?preset=corner&w=800&h=600`)).body);
    expect(at(bigger, 0, 0)).toEqual([255, 0, 0]);
    expect(at(bigger, 79, 39)).toEqual([255, 0, 0]);
  });

  it('fail with UGCFS_ERR_WATERMARK when the overlay is missing, never serving the picture without it', async () => {
    const r = await http(`${marked.url}/${garden}?preset=gone`);
    expect([r.status, r.json().error.code]).toEqual([500, 'UGCFS_ERR_WATERMARK']);
    expect(r.headers['cache-control']).toBe('no-store');
    expect(marked.lines.some((l) => l.includes('watermark overlay cannot be read'))).toBe(true);
  });

  it('refuse an overlay no preset names, even in a peer\'s variant key', async () => {
    const key = `100x0.inside.auto.q0.wm-${spring}-center-o1-s0.5`;
    const r = await http(`${plain.url}/_internal/variant/${garden}?v=${encodeURIComponent(key)}&n=0`, { headers: { 'x-ugcfs-secret': env.cluster.secret } });
    expect([r.status, r.json().error.code]).toEqual([400, 'UGCFS_ERR_BAD_PARAM']);
  });

  it('stop the start when an overlay is stored but not a PNG or WebP', async () => {
    const presets = JSON.stringify({ bad: { w: 100, watermark: { fid: ladybird } } });
    const r = await run(['origin', '--nameserver', env.cluster.nameserver.url, '--port', '0', '--presets', presets], { env: { UGCFS_CLUSTER_SECRET: env.cluster.secret }, timeoutMs: 60_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('preset bad');
    expect(r.stderr).toContain('not a PNG or WebP');
  }, 90_000);
});

describe('refusals and old URLs', () => {
  it('answers 400 UGCFS_ERR_BAD_PARAM for out-of-range operations', async () => {
    for (const q of ['w=100&h=100&gravity=north', 'w=100&h=100&fit=inside&gravity=attention', 'w=100&h=100&fit=cover&gravity=up', 'w=100&blur=0.2', 'w=100&blur=100.5', 'w=100&blur=1e1', 'w=100&sharpen=2', 'w=100&sharpen=', 'w=100&watermark=1']) {
      const r = await http(`${plain.url}/${garden}?${q}`);
      expect([r.status, r.json().error.code], q).toEqual([400, 'UGCFS_ERR_BAD_PARAM']);
    }
  });

  it('keeps Taobao suffix URLs on their keys and ETags', async () => {
    const suffix = await http(`${plain.url}/${garden}.jpg_200x200xz.jpg`);
    const query = await http(`${plain.url}/${garden}?w=200&h=200&fit=cover&fmt=jpeg&q=80`);
    expect(suffix.status).toBe(200);
    expect(suffix.headers.etag).toBe(query.headers.etag);
    expect(suffix.body.equals(query.body)).toBe(true);
  });
});
