// Everything sharp does for the origin: checking an upload (sniff, header probe, pixel
// limit before any decode, a cheap full decode that catches truncation), making stored and
// served bytes metadata-free, and rendering variants (auto-orient, resize, sRGB, encode).
// PIPELINE_VERSION is part of every variant ETag and cache key: bump it whenever output
// bytes for the same URL change, so caches and CDNs never mix old and new renderings.
import { availableParallelism } from 'node:os';
import sharp, { type Metadata, type Sharp } from 'sharp';
import { UgcfsError } from '../src/base/errors.ts';
import { hasOps } from './image-ops.ts';
import { cropPosition, withFilters, withWatermark } from './image-ops-render.ts';
import { IMAGE_MIME, sniffImage, type ImageFormat } from './media-type.ts';
import { stripJpeg, stripPng, stripWebp, type StripResult } from './metadata-strip.ts';
import type { Variant, OutputFormat } from './variant-url.ts';

export const PIPELINE_VERSION = 1;

export interface PipelineLimits {
  maxPixels: number;
  timeoutMs: number;
}

export interface CheckedImage {
  /** the bytes to store: metadata stripped */
  data: Buffer;
  format: ImageFormat;
  mime: string;
  /** as displayed (EXIF orientation applied) */
  width: number;
  height: number;
}

/** Largest EXIF block the lossless strippers leave: the orientation-only one they write. */
const MAX_KEPT_EXIF = 64;

function badImage(message: string, cause?: unknown): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_IMAGE', message, { cause });
}

/**
 * sharp's input with our pixel limit. Uploads are checked with failOn 'warning' (libjpeg's
 * "corrupt data" warnings included: an upload that decodes with damage is refused); stored
 * files were checked once already, so rendering only stops on truncation.
 */
function input(data: Buffer, limits: PipelineLimits, animated: boolean, failOn: 'warning' | 'truncated' = 'truncated'): Sharp {
  return sharp(data, { limitInputPixels: limits.maxPixels, failOn, animated }).timeout({
    seconds: Math.max(1, Math.ceil(limits.timeoutMs / 1000)),
  });
}

function pipelineError(err: unknown): UgcfsError {
  if (err instanceof UgcfsError) return err;
  const msg = (err as Error)?.message ?? String(err);
  if (/pixel limit/i.test(msg)) return new UgcfsError('UGCFS_ERR_TOO_MANY_PIXELS', 'the image has more pixels than this origin accepts');
  if (/timeout/i.test(msg)) return new UgcfsError('UGCFS_ERR_TIMEOUT', 'the image pipeline timed out');
  return badImage(`the image cannot be decoded: ${msg.split('\n')[0]}`, err);
}

async function probe(data: Buffer): Promise<Metadata> {
  try {
    // Header only: the pixel limit is ours to apply (with a clear code), not sharp's.
    return await sharp(data, { limitInputPixels: false }).metadata();
  } catch (err) {
    if (/pixel limit/i.test((err as Error).message)) throw pipelineError(err);
    throw badImage(`the image header cannot be read: ${(err as Error).message.split('\n')[0]}`, err);
  }
}

function pixelsOf(meta: Metadata): number {
  // For animations sharp reports one frame's height and the frame count.
  return meta.width * (meta.pageHeight ?? meta.height) * Math.max(1, meta.pages ?? 1);
}

function strip(format: ImageFormat, data: Buffer): StripResult | undefined {
  if (format === 'jpeg') return stripJpeg(data);
  if (format === 'png') return stripPng(data);
  if (format === 'webp') return stripWebp(data);
  return { data, orientation: 1, needsReencode: false };
}

function hasLeftoverMetadata(meta: Metadata): boolean {
  return (meta.exif !== undefined && meta.exif.length > MAX_KEPT_EXIF) || meta.xmp !== undefined || meta.iptc !== undefined || (meta.comments?.length ?? 0) > 0;
}

/**
 * sharp hands its output over on libvips' growable output allocation, which is often many
 * times the output's length (measured: a 186-byte JPEG holding ~16 KB). Outputs kept for
 * long — the memory tier holds variants and originals — kept that memory too: an origin's
 * RSS grew ~20 KB per distinct variant (122 → 524 MB over 20,000) with 49 MB cached. A copy
 * of exactly the output's length costs one memcpy of bytes a resize just produced.
 */
async function exactOutput(out: Promise<Buffer>): Promise<Buffer> {
  const b = await out;
  const exact = Buffer.allocUnsafeSlow(b.length);
  b.copy(exact);
  return exact;
}

/**
 * Re-encodes upright without metadata: the fallback for containers the lossless strippers
 * cannot clean (AVIF, GIF with metadata) or cannot keep an orientation in (PNG, WebP).
 */
async function reencode(data: Buffer, format: ImageFormat, meta: Metadata, limits: PipelineLimits): Promise<Buffer> {
  const animated = (meta.pages ?? 1) > 1;
  const img = input(data, limits, animated).autoOrient();
  switch (format) {
    case 'jpeg': return exactOutput(img.jpeg({ quality: 92 }).toBuffer());
    case 'png': return exactOutput(img.png().toBuffer());
    case 'webp': return exactOutput(img.webp({ quality: 92, lossless: meta.isPalette }).toBuffer());
    case 'gif': return exactOutput(img.gif().toBuffer());
    case 'avif': return exactOutput(img.avif({ quality: 70, effort: 2 }).toBuffer());
  }
}

/**
 * Checks untrusted upload bytes and returns what to store. Order matters: type by magic
 * numbers, then dimensions from the header alone (no pixels decoded), and only then a
 * decode — so a decompression bomb is refused before it can allocate anything.
 * `decodeSlot` runs the expensive part inside the origin's bounded resize capacity.
 */
export async function checkUpload(bytes: Buffer, limits: PipelineLimits, decodeSlot: <T>(job: () => Promise<T>) => Promise<T>): Promise<CheckedImage> {
  if (bytes.length === 0) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'the upload has no bytes');
  const format = sniffImage(bytes);
  if (!format) throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', 'the bytes are not a JPEG, PNG, WebP, GIF or AVIF image');
  const meta = await probe(bytes);
  if (meta.format !== format && !(format === 'avif' && meta.format === 'heif')) {
    throw badImage(`the bytes start like ${format} but decode as ${meta.format}`);
  }
  if (!meta.width || !meta.height) throw badImage('the image has no dimensions');
  if (pixelsOf(meta) > limits.maxPixels) {
    throw new UgcfsError('UGCFS_ERR_TOO_MANY_PIXELS', `the image has ${pixelsOf(meta)} pixels; the limit is ${limits.maxPixels}`);
  }
  return decodeSlot(async () => {
    const stripped = strip(format, bytes);
    if (!stripped) throw badImage(`the ${format} structure is damaged`);
    let data = stripped.data;
    const animated = (meta.pages ?? 1) > 1;
    try {
      // A small shrink-on-load decode still reads every compressed byte, so truncation and
      // corruption surface here at a fraction of a full decode's cost.
      await input(data, limits, animated, 'warning').resize(64, 64, { fit: 'inside' }).raw().toBuffer();
    } catch (err) {
      throw pipelineError(err);
    }
    // Bytes the strip left unchanged have the header already probed: one sharp call fewer
    // (each costs 150-300 µs of the main thread before its work leaves it).
    const after = data.equals(bytes) ? meta : await probe(data);
    if (stripped.needsReencode || hasLeftoverMetadata(after)) {
      try {
        data = await reencode(data, format, after, limits);
      } catch (err) {
        throw pipelineError(err);
      }
    }
    return { data, format, mime: IMAGE_MIME[format], width: meta.autoOrient.width, height: animated ? meta.pageHeight ?? meta.height : meta.autoOrient.height };
  });
}

/**
 * Makes stored bytes safe to serve as an original. Files uploaded through the origin are
 * already clean and come back unchanged (byte-exact); files written by other tools
 * (`ugcfs put`, migration) get the same stripping on the way out.
 */
export async function sanitizeOriginal(data: Buffer, format: ImageFormat, limits: PipelineLimits): Promise<Buffer> {
  const stripped = strip(format, data);
  if (!stripped) return data;
  if (format === 'jpeg' || ((format === 'png' || format === 'webp') && !stripped.needsReencode)) return stripped.data;
  try {
    const meta = await sharp(stripped.data).metadata();
    if (stripped.needsReencode || hasLeftoverMetadata(meta)) return await reencode(stripped.data, format, meta, limits);
  } catch {
    // Undecodable bytes carry no decodable metadata either; serve them as stored.
  }
  return stripped.data;
}

export interface Rendered {
  data: Buffer;
  format: OutputFormat | 'gif';
  mime: string;
}

/**
 * Renders one variant: auto-orient, resize (never enlarging), the image operations
 * (image-ops-render.ts; `overlay`: the bytes of v.watermark), sRGB, encode; no metadata.
 */
export async function renderVariant(source: Buffer, v: Variant, limits: PipelineLimits, overlay?: Buffer): Promise<Rendered> {
  const srcFormat = sniffImage(source);
  if (!srcFormat) throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', 'variants can only be made of images');
  const format: OutputFormat | 'gif' = v.fmt === 'auto' ? srcFormat : v.fmt;
  // Frames survive only into formats that animate, and without image operations.
  const animated = (srcFormat === 'gif' || srcFormat === 'webp') && (format === 'gif' || format === 'webp') && !hasOps(v);
  try {
    let img = input(source, limits, animated).autoOrient();
    if (v.w > 0 || v.h > 0) {
      img = img.resize({ width: v.w || undefined, height: v.h || undefined, fit: v.fit, withoutEnlargement: true, ...cropPosition(v) });
    }
    img = withFilters(img, v).toColourspace('srgb');
    if (v.watermark) img = await withWatermark(img, v.watermark, overlay, Math.max(1, Math.ceil(limits.timeoutMs / 1000)));
    switch (format) {
      case 'jpeg': img = img.jpeg({ quality: v.q || 80 }); break;
      case 'webp': img = img.webp({ quality: v.q || 80 }); break;
      case 'avif': img = img.avif({ quality: v.q || 50, effort: 2 }); break;
      case 'png': img = img.png(); break;
      case 'gif': img = img.gif(); break;
    }
    const data = await exactOutput(img.toBuffer());
    return { data, format, mime: IMAGE_MIME[format] };
  } catch (err) {
    throw pipelineError(err);
  }
}

/** libvips threads each variant gets: a share of the cores, not all of them per job. */
export function vipsThreadsPerResize(resizeConcurrency: number): number {
  return Math.max(1, Math.floor(Math.max(1, availableParallelism()) / resizeConcurrency));
}

/** Process-wide sharp tuning; libvips' settings are global, so set once per process. */
export function tuneSharp(resizeConcurrency: number): void {
  // The operation cache only helps repeated identical pipelines, which our own caches absorb.
  sharp.concurrency(vipsThreadsPerResize(resizeConcurrency));
  sharp.cache(false);
}
