// The overlays of watermark presets: read through the origin's file store like any stored
// file, checked once (a PNG or WebP, a logo's size, decodable), and kept for a minute, so a
// burst of watermarked misses reads each overlay once. Only the fids the presets name are
// ever loaded: a variant key from a peer cannot make this origin composite another file.
//
// A watermarked variant never goes out without its overlay: an overlay that is missing,
// not an image or damaged fails the variant with 500 UGCFS_ERR_WATERMARK (storage being
// unreachable keeps storage's own 5xx code). The startup check refuses to start an origin
// whose overlay is stored but unusable; one that cannot be found (storage may still be
// coming up) is logged, and the variants fail until it can be read.
import sharp from 'sharp';
import { isUgcfsError, UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { FileStore } from './file-store.ts';
import type { ImageOps } from './image-ops.ts';
import { MAX_WATERMARK_PIXELS, watermarkError } from './image-ops-render.ts';
import { sniffImage } from './media-type.ts';

/** How long a loaded overlay is used before storage is asked again (a deleted one stops within this). */
const KEEP_MS = 60_000;
/** How long a definitive failure (missing, unusable) is answered without asking storage again. */
const FAILED_KEEP_MS = 2_000;
const MAX_WATERMARK_BYTES = 8 * 1024 * 1024;

export class WatermarkSource {
  private readonly loaded = new Map<string, { bytes: Promise<Buffer>; until: number }>();

  /** `fids`: overlay fid -> the presets that use it (presets.ts presetWatermarks) */
  constructor(
    private readonly store: Pick<FileStore, 'get'>,
    private readonly fids: ReadonlyMap<string, readonly string[]>,
    private readonly now: () => number = Date.now,
  ) {}

  /** The overlay bytes a variant needs, or undefined when it has no watermark. */
  async overlayFor(ops: ImageOps): Promise<Buffer | undefined> {
    return ops.watermark ? this.load(ops.watermark.fid) : undefined;
  }

  /** A preset's overlay, checked; throws UGCFS_ERR_WATERMARK when it is missing or unusable. */
  load(fid: string): Promise<Buffer> {
    if (!this.fids.has(fid)) return Promise.reject(new UgcfsError('UGCFS_ERR_BAD_PARAM', 'the watermark is not one of this origin\'s presets'));
    const at = this.now();
    const kept = this.loaded.get(fid);
    if (kept && kept.until > at) return kept.bytes;
    const bytes = this.fetchChecked(fid);
    const entry = { bytes, until: Number.POSITIVE_INFINITY };
    this.loaded.set(fid, entry);
    bytes.then(
      () => { entry.until = this.now() + KEEP_MS; },
      (err: unknown) => {
        if (isUgcfsError(err, 'UGCFS_ERR_WATERMARK')) entry.until = this.now() + FAILED_KEEP_MS;
        else if (this.loaded.get(fid) === entry) this.loaded.delete(fid); // storage trouble: ask again next time
      },
    );
    return bytes;
  }

  private async fetchChecked(fid: string): Promise<Buffer> {
    let data: Buffer;
    try {
      data = (await this.store.get(fid)).data;
    } catch (err) {
      if (isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) throw watermarkError(`the watermark ${fid} is not in storage`, err);
      throw err;
    }
    const format = sniffImage(data);
    if (format !== 'png' && format !== 'webp') throw watermarkError(`the watermark ${fid} is ${format ?? 'not an image'}, not a PNG or WebP`);
    if (data.length > MAX_WATERMARK_BYTES) throw watermarkError(`the watermark ${fid} is larger than ${MAX_WATERMARK_BYTES} bytes`);
    try {
      const meta = await sharp(data, { limitInputPixels: false }).metadata();
      if (meta.width * meta.height > MAX_WATERMARK_PIXELS) throw new Error(`${meta.width}x${meta.height} is more than ${MAX_WATERMARK_PIXELS} pixels`);
      // A small decode reads every compressed byte: a damaged overlay is found once, here.
      await sharp(data, { failOn: 'truncated' }).resize(32, 32, { fit: 'inside' }).raw().toBuffer();
    } catch (err) {
      throw watermarkError(`the watermark ${fid} cannot be used: ${(err as Error).message.split('\n')[0]}`, err);
    }
    return data;
  }

  /**
   * The startup check: every overlay is read once. One that is stored but unusable stops the
   * start (UGCFS_ERR_BAD_USAGE, naming its presets); one storage cannot give now is logged.
   */
  async check(log: Logger): Promise<void> {
    for (const [fid, presets] of this.fids) {
      try {
        await this.load(fid);
      } catch (err) {
        const missing = isUgcfsError((err as Error).cause, 'UGCFS_ERR_NOT_FOUND');
        if (isUgcfsError(err, 'UGCFS_ERR_WATERMARK') && !missing) {
          throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--presets: preset ${presets.join(', ')}: ${(err as Error).message}`);
        }
        log.error({ fid, presets, err: (err as Error).message }, 'watermark overlay cannot be read; its presets fail until it can');
      }
    }
  }
}
