// The CPU a resize miss's own steps cost, each measured alone in this process (no HTTP, no
// other load of ours): sharp's work as the origin asks for it against sharp's defaults, the
// colour-space call and the pipeline timeout on and off, and the origin's small steps around
// it. `node bin/run-ts.mjs bench/origin-resize.ts --stages` prints them; docs/BENCHMARKS.md's
// "where the time went" table is made from them.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { makeResponse } from '../../../origin/cached-response.ts';
import { renderVariant, tuneSharp } from '../../../origin/image-pipeline.ts';
import { jobPixels } from '../../../origin/image-size.ts';
import { stripJpeg, stripPng } from '../../../origin/metadata-strip.ts';
import type { Variant } from '../../../origin/variant-url.ts';

export interface Stage {
  stage: string;
  /** CPU µs per call, every thread of this process */
  us: number;
  per: string;
}

function cpuUs(n: number, f: () => unknown): number {
  for (let i = 0; i < Math.min(n, 20); i++) f();
  const c = process.cpuUsage();
  for (let i = 0; i < n; i++) f();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / n;
}

async function cpuUsAsync(n: number, f: (i: number) => Promise<unknown>): Promise<number> {
  const c = process.cpuUsage();
  for (let i = 0; i < n; i++) await f(i);
  const d = process.cpuUsage(c);
  return (d.user + d.system) / n;
}

/** Stage costs over `sources` (file names in `dir`), sharp tuned as the origin tunes it. */
export async function resizeStages(dir: string, sources: string[], resizeSlots: number): Promise<Stage[]> {
  tuneSharp(resizeSlots);
  const bufs = sources.map((f) => readFileSync(join(dir, f)));
  const limits = { maxPixels: 100_000_000, timeoutMs: 15_000 };
  const width = (i: number) => 200 + ((i * 37) % 1000);
  const variant = (i: number) => ({ w: width(i), h: 0, fit: 'inside', q: 80, fmt: 'jpeg', key: `w=${width(i)}`, negotiated: false }) as unknown as Variant;
  const n = bufs.length * 6;
  const asked = (i: number, colour: boolean, timeout: boolean) => {
    let img = sharp(bufs[i % bufs.length], { limitInputPixels: limits.maxPixels, failOn: 'truncated' });
    if (timeout) img = img.timeout({ seconds: 15 });
    img = img.autoOrient().resize({ width: width(i), withoutEnlargement: true });
    if (colour) img = img.toColourspace('srgb');
    return img.jpeg({ quality: 80 }).toBuffer();
  };
  // Each pair measured a-b-b-a after a warm-up of both, so neither side always goes first
  // and a change in the machine's load hits both alike.
  const pair = async (a: (i: number) => Promise<unknown>, b: (i: number) => Promise<unknown>) => {
    await cpuUsAsync(bufs.length, a);
    await cpuUsAsync(bufs.length, b);
    const x = [await cpuUsAsync(n, a)];
    const y = [await cpuUsAsync(n, b), await cpuUsAsync(n, b)];
    x.push(await cpuUsAsync(n, a));
    return [(x[0]! + x[1]!) / 2, (y[0]! + y[1]!) / 2] as const;
  };
  const [origin, defaults] = await pair((i) => renderVariant(bufs[i % bufs.length]!, variant(i), limits), (i) => sharp(bufs[i % bufs.length]).rotate().resize({ width: width(i) }).jpeg({ quality: 80 }).toBuffer());
  const [withColour, without] = await pair((i) => asked(i, true, true), (i) => asked(i, false, true));
  const [withTimeout, noTimeout] = await pair((i) => asked(i, false, true), (i) => asked(i, false, false));
  const out = await sharp(bufs[0]).resize({ width: 800 }).jpeg({ quality: 80 }).toBuffer();
  const jpegs = bufs.filter((b) => b[0] === 0xff);
  const pngs = bufs.filter((b) => b[0] === 0x89);
  return [
    { stage: 'renderVariant (the origin\'s sharp calls), JPEG out', us: origin, per: 'miss' },
    { stage: 'sharp defaults: rotate, resize, JPEG q80', us: defaults, per: 'resize' },
    { stage: 'toColourspace(\'srgb\') (with minus without)', us: withColour - without, per: 'miss' },
    { stage: 'pipeline timeout (with minus without)', us: withTimeout - noTimeout, per: 'miss' },
    { stage: 'metadata strip of a JPEG original', us: jpegs.length ? cpuUs(20, () => jpegs.forEach((b) => stripJpeg(b))) / jpegs.length : Number.NaN, per: 'original fetched' },
    { stage: 'metadata strip of a PNG original', us: pngs.length ? cpuUs(20, () => pngs.forEach((b) => stripPng(b))) / pngs.length : Number.NaN, per: 'original fetched' },
    { stage: 'source pixels from the header (resize gate weight)', us: cpuUs(20_000, () => jobPixels(bufs[0]!, limits.maxPixels)), per: 'miss' },
    { stage: `exact-length copy of the output (${Math.round(out.length / 1024)} KiB)`, us: cpuUs(5_000, () => { const e = Buffer.allocUnsafeSlow(out.length); out.copy(e); }), per: 'miss' },
    { stage: 'ETag hash (sha256 of the variant key)', us: cpuUs(20_000, () => createHash('sha256').update('w=800&q=80&fmt=jpeg').digest('base64url')), per: 'miss' },
    { stage: 'cache entry and its headers (makeResponse)', us: cpuUs(20_000, () => makeResponse(out, { mime: 'image/jpeg', etag: '"e"', lastModified: 0, negotiated: false, attachment: false })), per: 'miss' },
  ];
}
