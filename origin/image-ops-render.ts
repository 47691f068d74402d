// What sharp does with a variant's image operations (origin/image-ops.ts): where a fit=cover
// crop goes (a compass position, or libvips' attention/entropy strategies), blur, sharpen,
// and a preset's watermark composited over the finished picture. image-pipeline.ts's
// renderVariant calls these between its resize and its encode; everything they take is
// plain data and bytes, so a render can run wherever renderVariant runs.
import sharp, { type ResizeOptions, type Sharp } from 'sharp';
import { UgcfsError } from '../src/base/errors.ts';
import type { ImageOps, WatermarkSpec } from './image-ops.ts';

/** Largest overlay source accepted, in pixels: a logo, not a photo. */
export const MAX_WATERMARK_PIXELS = 4096 * 4096;
/** sharpen=1: libvips' sharpen with a 1-pixel Gaussian, its other settings left at sharp's defaults. */
export const SHARPEN_SIGMA = 1;

/** sharp's `position` for the crop of a fit=cover variant (nothing: centre). */
export function cropPosition(ops: ImageOps): Pick<ResizeOptions, 'position'> {
  switch (ops.gravity) {
    case undefined: return {};
    case 'attention': return { position: sharp.strategy.attention };
    case 'entropy': return { position: sharp.strategy.entropy };
    case 'center': return { position: 'centre' };
    default: return { position: ops.gravity };
  }
}

/** blur, then sharpen, applied after the resize (sharp's pipeline order). */
export function withFilters(img: Sharp, ops: ImageOps): Sharp {
  let out = img;
  if (ops.blur !== undefined) out = out.blur(ops.blur);
  if (ops.sharpen) out = out.sharpen({ sigma: SHARPEN_SIGMA });
  return out;
}

export function watermarkError(message: string, cause?: unknown): UgcfsError {
  return new UgcfsError('UGCFS_ERR_WATERMARK', message, { cause });
}

/** Top-left corner of a `w`x`h` overlay placed at `position` on a `W`x`H` picture, flush with its edges. */
export function overlayOrigin(position: WatermarkSpec['position'], W: number, H: number, w: number, h: number): { left: number; top: number } {
  const x = position.endsWith('west') ? 0 : position.endsWith('east') ? W - w : Math.floor((W - w) / 2);
  const y = position.startsWith('north') ? 0 : position.startsWith('south') ? H - h : Math.floor((H - h) / 2);
  return { left: x, top: y };
}

/** The overlay for a `W`x`H` output: `scale` of its width (never taller than it), in RGBA with `opacity` in its alpha. */
async function overlayFor(bytes: Buffer, wm: WatermarkSpec, W: number, H: number, seconds: number): Promise<{ data: Buffer; width: number; height: number }> {
  try {
    const width = Math.max(1, Math.round(W * wm.scale));
    const { data, info } = await sharp(bytes, { limitInputPixels: MAX_WATERMARK_PIXELS, failOn: 'truncated' })
      .timeout({ seconds })
      .resize({ width, height: H, fit: 'inside' })
      .toColourspace('srgb')
      .ensureAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (wm.opacity < 1) for (let i = 3; i < data.length; i += 4) data[i] = Math.round(data[i]! * wm.opacity);
    return { data, width: info.width, height: info.height };
  } catch (err) {
    throw watermarkError(`the watermark ${wm.fid} cannot be decoded: ${(err as Error).message.split('\n')[0]}`, err);
  }
}

/**
 * `img` (resized, filtered, sRGB) with the watermark composited over it. The output's size is
 * known only once it is rendered, so the picture is rendered to raw pixels first; the result
 * keeps the picture's channels (no alpha appears where there was none).
 */
export async function withWatermark(img: Sharp, wm: WatermarkSpec, overlay: Buffer | undefined, seconds: number): Promise<Sharp> {
  if (!overlay) throw watermarkError(`the watermark ${wm.fid} was not loaded`);
  const { data, info } = await img.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const mark = await overlayFor(overlay, wm, info.width, info.height, seconds);
  const at = overlayOrigin(wm.position, info.width, info.height, mark.width, mark.height);
  const out = sharp(data, { raw: { width: info.width, height: info.height, channels: info.channels }, limitInputPixels: false })
    .timeout({ seconds })
    .composite([{ input: mark.data, raw: { width: mark.width, height: mark.height, channels: 4 }, ...at }]);
  return info.channels === 4 ? out : out.removeAlpha();
}
