// The image operations beyond resizing, as words: `gravity` (which part a fit=cover crop
// keeps), `blur`, `sharpen`, and a preset's watermark overlay. This module is their grammar
// and their part of the canonical variant key; it does not load sharp. What sharp does with
// them is origin/image-ops-render.ts; the overlay's bytes come from origin/watermark.ts.
//
// Each operation is in the key only when it changes the output (gravity=center, the crop's
// default, and a gravity on a box with a free side, which does not crop, are not), so every
// spelling of one output keeps one cache entry and one ETag, and variants without operations
// keep the keys (and ETags) they had before the operations existed.
import { UgcfsError } from '../src/base/errors.ts';

/** Where an overlay sits, and which part of the image a compass crop keeps. */
export const POSITIONS = ['center', 'north', 'northeast', 'east', 'southeast', 'south', 'southwest', 'west', 'northwest'] as const;
export type Position = (typeof POSITIONS)[number];
/** `gravity=` of a fit=cover crop: a compass position, or a content strategy of libvips. */
export const GRAVITIES = [...POSITIONS, 'attention', 'entropy'] as const;
export type Gravity = (typeof GRAVITIES)[number];
/** Gaussian blur sigma bounds: below 0.3 libvips' mask is a no-op, above 100 it is a grey field. */
export const MIN_BLUR = 0.3;
export const MAX_BLUR = 100;
/** The query parameters of the operations (a watermark is never one). */
export const OPERATION_PARAMS = ['gravity', 'blur', 'sharpen'] as const;

/** A preset's overlay: a stored PNG/WebP by fid, never named by a URL. */
export interface WatermarkSpec {
  fid: string;
  position: Position;
  /** 0..1, at most two decimals */
  opacity: number;
  /** the overlay's width as a share of the output's width, (0, 1], at most three decimals */
  scale: number;
}

/** The operations of one variant, as asked (VariantSpec) or as canonical (Variant). */
export interface ImageOps {
  gravity?: Gravity;
  /** Gaussian blur sigma, MIN_BLUR..MAX_BLUR, at most two decimals */
  blur?: number;
  sharpen?: true;
  /** only ever set by a preset (origin/presets.ts) */
  watermark?: WatermarkSpec;
}

function badParam(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_PARAM', message);
}

const DECIMAL = [/^\d{1,3}$/, /^\d{1,3}(\.\d)?$/, /^\d{1,3}(\.\d{1,2})?$/, /^\d{1,3}(\.\d{1,3})?$/];

/** A decimal with at most `places` (0-3) decimals in [min, max]; its canonical text is String(n). */
export function decimalIn(name: string, text: string, min: number, max: number, places: 0 | 1 | 2 | 3): number {
  if (!DECIMAL[places]!.test(text)) throw badParam(`${name} must be a number from ${min} to ${max} with at most ${places} decimals`);
  const n = Number(text);
  if (n < min || n > max) throw badParam(`${name} must be from ${min} to ${max}, got ${text}`);
  return n;
}

/** Checks one `name=value` of the operations into `ops`; false when `name` is not one of them. */
export function applyOperationParam(ops: ImageOps, name: string, value: string): boolean {
  switch (name) {
    case 'gravity':
      if (!(GRAVITIES as readonly string[]).includes(value)) throw badParam(`gravity must be one of ${GRAVITIES.join(', ')}`);
      ops.gravity = value as Gravity;
      return true;
    case 'blur':
      ops.blur = decimalIn('blur', value, MIN_BLUR, MAX_BLUR, 2);
      return true;
    case 'sharpen':
      if (value !== '1') throw badParam('sharpen takes the value 1');
      ops.sharpen = true;
      return true;
    default:
      return false;
  }
}

/**
 * The canonical operations of a variant resolved to `fit` and a `w`x`h` box (0: free), from
 * what was asked (`asked.fit` as asked, before defaults). gravity without fit=cover is refused:
 * it would silently do nothing.
 */
export function canonicalOps(asked: ImageOps & { fit?: string }, fit: string, w: number, h: number): ImageOps {
  if (asked.gravity !== undefined && asked.fit !== 'cover') throw badParam('gravity needs fit=cover (it picks which part of the image a crop keeps)');
  const out: ImageOps = {};
  if (asked.gravity !== undefined && asked.gravity !== 'center' && fit === 'cover' && w > 0 && h > 0) out.gravity = asked.gravity;
  if (asked.blur !== undefined) out.blur = asked.blur;
  if (asked.sharpen) out.sharpen = true;
  if (asked.watermark) out.watermark = { ...asked.watermark };
  return out;
}

/** The operations' part of a variant key: ".g-attention.blur2.5.sharpen.wm-<fid>-southeast-o0.5-s0.25", each only when set. */
export function opsKey(ops: ImageOps): string {
  let key = '';
  if (ops.gravity) key += `.g-${ops.gravity}`;
  if (ops.blur !== undefined) key += `.blur${ops.blur}`;
  if (ops.sharpen) key += '.sharpen';
  const m = ops.watermark;
  if (m) key += `.wm-${m.fid}-${m.position}-o${m.opacity}-s${m.scale}`;
  return key;
}

const NUM = '(\\d{1,3}(?:\\.\\d{1,3})?)';
/** opsKey's shape as a regex source with seven groups, for the end of a key pattern. */
export const OPS_KEY_SHAPE =
  `(?:\\.g-(${GRAVITIES.join('|')}))?(?:\\.blur${NUM})?(\\.sharpen)?` +
  `(?:\\.wm-([A-Za-z0-9_-]{21})-(${POSITIONS.join('|')})-o${NUM}-s${NUM})?`;

/**
 * The operations of a key's OPS_KEY_SHAPE groups, for a `fit` and `w`x`h` box; undefined when
 * they are out of range or could not be canonical (the caller also compares the rebuilt key).
 */
export function opsFromKey(g: ReadonlyArray<string | undefined>, fit: string, w: number, h: number): ImageOps | undefined {
  const ops: ImageOps = {};
  if (g[0] !== undefined) ops.gravity = g[0] as Gravity;
  if (g[1] !== undefined) ops.blur = Number(g[1]);
  if (g[2] !== undefined) ops.sharpen = true;
  if (g[3] !== undefined) ops.watermark = { fid: g[3], position: g[4] as Position, opacity: Number(g[5]), scale: Number(g[6]) };
  const wm = ops.watermark;
  const ok =
    (ops.gravity === undefined || (fit === 'cover' && w > 0 && h > 0 && ops.gravity !== 'center')) &&
    (ops.blur === undefined || (ops.blur >= MIN_BLUR && ops.blur <= MAX_BLUR)) &&
    (wm === undefined || (wm.opacity <= 1 && wm.scale > 0 && wm.scale <= 1));
  return ok ? ops : undefined;
}

/** Whether a variant is made as a still image: operations apply to one frame, not to an animation. */
export function hasOps(ops: ImageOps): boolean {
  return ops.gravity !== undefined || ops.blur !== undefined || ops.sharpen !== undefined || ops.watermark !== undefined;
}
