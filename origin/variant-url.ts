// The origin's one URL grammar. Both spellings of a variant — query parameters
// (`?w=400&h=400&fit=cover`) and Taobao-era suffixes (`.jpg_400x400xz.jpg`) — parse into the
// same VariantSpec, and resolveVariant() turns a spec into one canonical Variant whose key
// names the cache entry and the ETag, so every spelling of the same output shares both.
// The image operations (gravity, blur, sharpen, a preset's watermark) are origin/image-ops.ts;
// presets are origin/presets.ts.
import { UgcfsError } from '../src/base/errors.ts';
import { looksLikeFid } from '../src/wire/file-id.ts';
import { legacyPathFromUrl } from '../src/wire/legacy-path.ts';
import { applyOperationParam, canonicalOps, OPERATION_PARAMS, opsFromKey, opsKey, OPS_KEY_SHAPE, type ImageOps } from './image-ops.ts';

export const FITS = ['cover', 'contain', 'inside', 'fill', 'outside'] as const;
export type Fit = (typeof FITS)[number];
export const OUTPUT_FORMATS = ['jpeg', 'png', 'webp', 'avif'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Longest request target (path + query) the origin reads at all. */
export const MAX_URL_LENGTH = 4096;
/** Largest width or height a URL may ask for, before dpr. */
export const MAX_DIMENSION = 8192;
/** Largest side after dpr; WebP cannot encode beyond 16383. */
export const MAX_OUTPUT_SIDE = 16383;
export const DEFAULT_QUALITY: Readonly<Record<OutputFormat, number>> = { jpeg: 80, webp: 80, avif: 50, png: 0 };

/** What a URL asked for, before presets, dpr and defaults are applied. */
export interface VariantSpec extends ImageOps {
  w?: number;
  h?: number;
  fit?: Fit;
  q?: number;
  fmt?: OutputFormat;
  dpr?: number;
  preset?: string;
}

export interface ParsedTarget {
  kind: 'fid' | 'legacy';
  /** the fid, or the canonical legacy path */
  id: string;
  /** undefined: the original */
  spec: VariantSpec | undefined;
  /** value of `sig`, if given */
  sig: string | undefined;
  /** `exp=<unix seconds>`, if given: a signed URL is refused after it (the signature covers it) */
  exp?: number;
  /** path and query exactly as sent, minus the `sig` parameter: what a signature covers */
  signed: string;
}

/** The canonical output: every field set, so equal outputs have equal keys. */
export interface Variant extends ImageOps {
  /** 0: unconstrained */
  w: number;
  h: number;
  fit: Fit;
  /** 'auto': the source's own format */
  fmt: OutputFormat | 'auto';
  /** 0: the format's default (PNG ignores quality) */
  q: number;
  /** canonical text, e.g. "400x400.cover.webp.q80", then the operations' part (image-ops.ts opsKey) */
  key: string;
  /** the format came from the Accept header: answers carry Vary: Accept */
  negotiated: boolean;
}

function badParam(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_PARAM', message);
}

function intIn(name: string, text: string, min: number, max: number): number {
  if (!/^\d{1,9}$/.test(text)) throw badParam(`${name} must be a whole number from ${min} to ${max}`);
  const n = Number(text);
  if (n < min || n > max) throw badParam(`${name} must be from ${min} to ${max}, got ${n}`);
  return n;
}

function formatFromExt(ext: string): OutputFormat | undefined {
  const e = ext.toLowerCase();
  if (e === 'jpg' || e === 'jpeg') return 'jpeg';
  return (OUTPUT_FORMATS as readonly string[]).includes(e) ? (e as OutputFormat) : undefined;
}

/** Checks and converts one `name=value` pair of the variant vocabulary into `spec`. */
export function applyParam(spec: VariantSpec, name: string, value: string): void {
  switch (name) {
    case 'w': spec.w = intIn('w', value, 1, MAX_DIMENSION); return;
    case 'h': spec.h = intIn('h', value, 1, MAX_DIMENSION); return;
    case 'q': spec.q = intIn('q', value, 1, 100); return;
    case 'fit':
      if (!(FITS as readonly string[]).includes(value)) throw badParam(`fit must be one of ${FITS.join(', ')}`);
      spec.fit = value as Fit;
      return;
    case 'fmt':
      if (!(OUTPUT_FORMATS as readonly string[]).includes(value)) throw badParam(`fmt must be one of ${OUTPUT_FORMATS.join(', ')}`);
      spec.fmt = value as OutputFormat;
      return;
    case 'dpr': {
      if (!/^\d(\.\d{1,2})?$/.test(value)) throw badParam('dpr must be a number from 1 to 3');
      const n = Number(value);
      if (n < 1 || n > 3) throw badParam(`dpr must be from 1 to 3, got ${value}`);
      spec.dpr = n;
      return;
    }
    case 'preset':
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(value)) throw badParam('preset name must be 1-64 of A-Z a-z 0-9 _ -');
      spec.preset = value;
      return;
    default:
      if (applyOperationParam(spec, name, value)) return;
      throw badParam(`unknown parameter ${JSON.stringify(name.slice(0, 40))}`);
  }
}

// `_<W>x<H>[xz][q<Q>|Q<Q>][xz].<ext2>` or `_q<Q>.<ext2>`, after a `.<ext>` on the name.
const SIZE_SUFFIX = /_(\d+)x(\d+)(xz)?(?:[qQ](\d+))?(xz)?\.([A-Za-z]{3,4})$/;
const QUALITY_SUFFIX = /_[qQ](\d+)\.([A-Za-z]{3,4})$/;
const FORCE_WEBP = '_.webp';

interface Suffix {
  base: string;
  spec: VariantSpec | undefined;
}

/**
 * Splits a Taobao-style variant suffix off `name`. The suffix must follow an extension
 * (`a.jpg_400x400.jpg`) — except on fids, whose extension is optional — so an old file
 * really called `photo_100x100.jpg` stays a plain name.
 */
export function splitSuffix(name: string, extOptional: boolean): Suffix {
  let rest = name;
  let spec: VariantSpec | undefined;
  if (rest.endsWith(FORCE_WEBP) && rest.length > FORCE_WEBP.length) {
    rest = rest.slice(0, -FORCE_WEBP.length);
    spec = { fmt: 'webp' };
  }
  const m = SIZE_SUFFIX.exec(rest) ?? QUALITY_SUFFIX.exec(rest);
  if (m) {
    const base = rest.slice(0, m.index);
    const hasExt = /\.[A-Za-z0-9]{1,5}$/.test(base);
    if (hasExt || extOptional) {
      const s: VariantSpec = {};
      const sized = m.length === 7;
      const ext2 = sized ? m[6]! : m[2]!;
      const fmt = formatFromExt(ext2);
      if (!fmt) throw badParam(`suffix format .${ext2} is not one of jpg, png, webp, avif`);
      s.fmt = fmt;
      if (sized) {
        s.w = intIn('suffix width', m[1]!, 1, MAX_DIMENSION);
        s.h = intIn('suffix height', m[2]!, 1, MAX_DIMENSION);
        // Taobao sizes are boxes the image fits inside; xz crops to fill the box.
        s.fit = m[3] || m[5] ? 'cover' : 'inside';
        if (m[4] !== undefined) s.q = intIn('suffix quality', m[4], 1, 100);
      } else {
        s.q = intIn('suffix quality', m[1]!, 1, 100);
      }
      if (spec?.fmt) s.fmt = spec.fmt; // a trailing _.webp wins over ext2
      return { base, spec: s };
    }
  }
  if (spec) {
    const hasExt = /\.[A-Za-z0-9]{1,5}$/.test(rest);
    if (hasExt || extOptional) return { base: rest, spec };
  }
  return { base: name, spec: undefined };
}

const VARIANT_PARAMS = new Set(['w', 'h', 'fit', 'q', 'fmt', 'dpr', 'preset', ...OPERATION_PARAMS]);

/**
 * Parses a request target (`req.url`: path and query as sent). Throws UGCFS_ERR_BAD_PATH for
 * paths that cannot name anything and UGCFS_ERR_BAD_PARAM for a bad variant.
 */
export function parseTarget(url: string): ParsedTarget {
  if (url.length > MAX_URL_LENGTH) throw new UgcfsError('UGCFS_ERR_BAD_PATH', `the URL is longer than ${MAX_URL_LENGTH} characters`);
  const qAt = url.indexOf('?');
  const path = qAt < 0 ? url : url.slice(0, qAt);
  const query = qAt < 0 ? '' : url.slice(qAt + 1);
  if (!path.startsWith('/')) throw new UgcfsError('UGCFS_ERR_BAD_PATH', 'the path must start with /');

  let querySpec: VariantSpec | undefined;
  let sig: string | undefined;
  let exp: number | undefined;
  const kept: string[] = [];
  if (query !== '') {
    const seen = new Set<string>();
    for (const pair of query.split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const rawName = eq < 0 ? pair : pair.slice(0, eq);
      const rawValue = eq < 0 ? '' : pair.slice(eq + 1);
      let name: string;
      let value: string;
      try {
        name = decodeURIComponent(rawName.replace(/\+/g, ' '));
        value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
      } catch {
        throw badParam('query string has a bad percent escape');
      }
      if (seen.has(name)) throw badParam(`parameter ${JSON.stringify(name.slice(0, 40))} is given twice`);
      seen.add(name);
      if (name === 'sig') { sig = value; continue; }
      kept.push(pair);
      if (name === 'exp') {
        if (!/^\d{1,12}$/.test(value)) throw badParam('exp must be a time in whole unix seconds');
        exp = Number(value);
        continue;
      }
      if (!VARIANT_PARAMS.has(name)) throw badParam(`unknown parameter ${JSON.stringify(name.slice(0, 40))}`);
      if (value === '') throw badParam(`parameter ${name} has no value`);
      querySpec ??= {};
      applyParam(querySpec, name, value);
    }
  }
  const signed = kept.length ? `${path}?${kept.join('&')}` : path;

  const name = path.slice(1);
  const fidPart = name.slice(0, 21);
  if (looksLikeFid(fidPart) && (name.length === 21 || name[21] === '.' || name[21] === '_')) {
    const { base, spec } = splitSuffix(name, true);
    const decoration = base.slice(21);
    if (decoration !== '' && !/^\.[A-Za-z0-9]{1,5}$/.test(decoration)) {
      throw badParam(`${JSON.stringify(name.slice(21, 60))} is neither an extension nor a variant suffix`);
    }
    if (spec && querySpec) throw badParam('give a variant either as a suffix or as query parameters, not both');
    return { kind: 'fid', id: fidPart, spec: spec ?? querySpec, sig, signed, ...(exp === undefined ? {} : { exp }) };
  }
  const { base, spec } = splitSuffix(path, false);
  if (spec && querySpec) throw badParam('give a variant either as a suffix or as query parameters, not both');
  return { kind: 'legacy', id: legacyPathFromUrl(base), spec: spec ?? querySpec, sig, signed, ...(exp === undefined ? {} : { exp }) };
}

export interface ResolveOptions {
  presets: ReadonlyMap<string, VariantSpec>;
  strict: boolean;
  /** strict-mode whitelist: "400x400", "400x" (width only), "x300" */
  allowedSizes: ReadonlySet<string>;
  maxOutputPixels: number;
  negotiate: boolean;
  accept: string | undefined;
}

/** Applies presets, dpr, strict mode, limits, negotiation and defaults; one canonical Variant. */
export function resolveVariant(spec: VariantSpec, opts: ResolveOptions): Variant {
  let s: VariantSpec = spec;
  if (spec.preset !== undefined) {
    const p = opts.presets.get(spec.preset);
    if (!p) throw badParam(`unknown preset ${JSON.stringify(spec.preset)}`);
    s = { ...p, ...withoutUndefined(spec) };
  }
  if (opts.strict) {
    const sizeGiven = spec.w !== undefined || spec.h !== undefined;
    const sizeKey = `${s.w ?? ''}x${s.h ?? ''}`;
    const presetOnly = spec.preset !== undefined && !sizeGiven;
    if (!presetOnly && !opts.allowedSizes.has(sizeKey)) {
      throw new UgcfsError('UGCFS_ERR_NOT_ALLOWED', `strict mode: size ${sizeKey} is neither a preset nor an allowed size`);
    }
  }
  const dpr = s.dpr ?? 1;
  // Fractional dprs would multiply every whitelisted size into hundreds of variants.
  if (opts.strict && !Number.isInteger(dpr)) throw new UgcfsError('UGCFS_ERR_NOT_ALLOWED', 'strict mode: dpr must be 1, 2 or 3');
  const w = s.w === undefined ? 0 : Math.round(s.w * dpr);
  const h = s.h === undefined ? 0 : Math.round(s.h * dpr);
  if (w > MAX_OUTPUT_SIDE || h > MAX_OUTPUT_SIDE || (w > 0 && h > 0 && w * h > opts.maxOutputPixels)) {
    throw new UgcfsError('UGCFS_ERR_OUTPUT_TOO_LARGE', `a ${w}x${h} variant is larger than this origin makes`);
  }
  let fmt: OutputFormat | 'auto' = s.fmt ?? 'auto';
  let negotiated = false;
  if (fmt === 'auto' && opts.negotiate) {
    negotiated = true;
    const accept = opts.accept ?? '';
    if (accepts(accept, 'image/avif')) fmt = 'avif';
    else if (accepts(accept, 'image/webp')) fmt = 'webp';
  }
  const fit: Fit = w === 0 && h === 0 ? 'inside' : s.fit ?? 'inside';
  let q = s.q ?? 0;
  if (fmt !== 'auto' && q === 0) q = DEFAULT_QUALITY[fmt];
  if (fmt === 'png') q = 0;
  const ops = canonicalOps(s, fit, w, h);
  return { w, h, fit, fmt, q, ...ops, key: `${w}x${h}.${fit}.${fmt}.q${q}${opsKey(ops)}`, negotiated };
}

function withoutUndefined(spec: VariantSpec): VariantSpec {
  const out: VariantSpec = {};
  for (const [k, v] of Object.entries(spec)) if (v !== undefined && k !== 'preset') (out as Record<string, unknown>)[k] = v;
  return out;
}

/** True when an Accept header lists `type` with a non-zero q (wildcards do not count). */
export function accepts(accept: string, type: string): boolean {
  for (const part of accept.split(',')) {
    const [t, ...params] = part.trim().split(';');
    if (t?.trim().toLowerCase() !== type) continue;
    const qp = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    return qp === undefined || Number(qp.slice(2)) > 0;
  }
  return false;
}

const KEY_SHAPE = new RegExp(`^(\\d{1,5})x(\\d{1,5})\\.(${FITS.join('|')})\\.(${OUTPUT_FORMATS.join('|')}|auto)\\.q(\\d{1,3})${OPS_KEY_SHAPE}$`);

/**
 * Rebuilds a Variant from its canonical key (peer origins pass keys, not URLs): only a key
 * resolveVariant could have made; anything else is BAD_PARAM. Whether a watermark is one
 * of this origin's presets is for origin/watermark.ts to say.
 */
export function variantFromKey(key: string, negotiated: boolean): Variant {
  const m = KEY_SHAPE.exec(key);
  if (!m) throw badParam('not a canonical variant key');
  const w = Number(m[1]);
  const h = Number(m[2]);
  const q = Number(m[5]);
  if (w > MAX_OUTPUT_SIDE || h > MAX_OUTPUT_SIDE || q > 100) throw badParam('variant key out of range');
  const ops = opsFromKey(m.slice(6), m[3]!, w, h);
  if (!ops || `${m[1]}x${m[2]}.${m[3]}.${m[4]}.q${m[5]}${opsKey(ops)}` !== key) throw badParam('not a canonical variant key');
  return { w, h, fit: m[3] as Fit, fmt: m[4] as OutputFormat | 'auto', q, ...ops, key, negotiated };
}
