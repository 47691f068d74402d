// --presets: named variants, checked once at startup with the same rules as URLs, plus the
// one thing only a preset may carry: a watermark overlay (a stored PNG/WebP by fid, its
// position, opacity and scale). A URL can ask for a preset that has one, never for an
// overlay of its own choosing.
import { UgcfsError } from '../src/base/errors.ts';
import { decodeFid } from '../src/wire/file-id.ts';
import { decimalIn, POSITIONS, type Position, type WatermarkSpec } from './image-ops.ts';
import { applyParam, type VariantSpec } from './variant-url.ts';

/** An overlay placed without saying where goes to the bottom right corner, at a fifth of the width. */
export const WATERMARK_DEFAULTS: Readonly<Omit<WatermarkSpec, 'fid'>> = { position: 'southeast', opacity: 1, scale: 0.2 };

function usage(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_USAGE', message);
}

function parseWatermark(preset: string, def: unknown): WatermarkSpec {
  const where = `--presets: preset ${preset}: watermark`;
  if (typeof def !== 'object' || def === null || Array.isArray(def)) throw usage(`${where} must be an object {"fid","position","opacity","scale"}`);
  const out: WatermarkSpec = { fid: '', ...WATERMARK_DEFAULTS };
  for (const [k, v] of Object.entries(def as Record<string, unknown>)) {
    const text = String(v);
    try {
      if (k === 'fid') {
        decodeFid(text);
        out.fid = text;
      } else if (k === 'position') {
        if (!(POSITIONS as readonly string[]).includes(text)) throw usage(`position must be one of ${POSITIONS.join(', ')}`);
        out.position = text as Position;
      } else if (k === 'opacity') out.opacity = decimalIn('opacity', text, 0, 1, 2);
      else if (k === 'scale') {
        out.scale = decimalIn('scale', text, 0, 1, 3);
        if (out.scale === 0) throw usage('scale must be above 0');
      } else throw usage(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
    } catch (err) {
      throw usage(`${where}: ${(err as Error).message}`);
    }
  }
  if (out.fid === '') throw usage(`${where} needs the fid of a stored PNG or WebP image`);
  return out;
}

/** Parses the --presets value (JSON object, already read from a file if needed). */
export function parsePresets(json: unknown): Map<string, VariantSpec> {
  const out = new Map<string, VariantSpec>();
  if (json === undefined) return out;
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw usage('--presets must be a JSON object of name -> {w,h,fit,q,fmt,dpr,gravity,blur,sharpen,watermark}');
  }
  for (const [name, def] of Object.entries(json as Record<string, unknown>)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(name) || typeof def !== 'object' || def === null) {
      throw usage(`--presets: preset ${JSON.stringify(name)} must be named [A-Za-z0-9_-] and be an object`);
    }
    const spec: VariantSpec = {};
    for (const [k, v] of Object.entries(def as Record<string, unknown>)) {
      if (k === 'preset') throw usage(`--presets: preset ${name} may not name another preset`);
      if (k === 'watermark') {
        spec.watermark = parseWatermark(name, v);
        continue;
      }
      try {
        applyParam(spec, k, k === 'sharpen' && v === true ? '1' : String(v));
      } catch (err) {
        throw usage(`--presets: preset ${name}: ${(err as Error).message}`);
      }
    }
    if (spec.gravity !== undefined && spec.fit !== 'cover') throw usage(`--presets: preset ${name}: gravity needs "fit": "cover"`);
    out.set(name, spec);
  }
  return out;
}

/** The overlays the presets use, by fid: the only ones this origin ever composites. */
export function presetWatermarks(presets: ReadonlyMap<string, VariantSpec>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const [name, spec] of presets) if (spec.watermark) out.set(spec.watermark.fid, [...(out.get(spec.watermark.fid) ?? []), name]);
  return out;
}
