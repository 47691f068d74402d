// The image pipeline's ceiling: a bare node:http server that resizes a source image already
// in memory with sharp and sends the result. It does the same work the origin does for a
// miss, with the same sharp calls and options (decode: failOn 'truncated', the origin's
// default pixel limit; auto-orient, resize without enlarging, sRGB; encode: quality q with
// sharp's defaults otherwise — baseline JPEG, 4:2:0 chroma, no mozjpeg, metadata stripped)
// and nothing else: no cache, no fetch of the original, no limits, no timeout.
//   node bin/run-ts.mjs bench/peers/bare-sharp.ts --dir PHOTOS [--port 0]
//        [--jobs N]     at most N resizes at once, the rest wait (0: no bound, the default)
//        [--threads T]  libvips threads per resize (0: sharp's default, one per core)
//        [--vips-cache] keep libvips' operation cache on (sharp's default; off otherwise)
//   GET /resize/<name>?w=400&fmt=jpeg|webp&q=80
import sharp from 'sharp';
import { boundedSlot } from '../../origin/legacy-read-through.ts';
import { parseFlags } from '../lib/flags.ts';
import { opt } from '../../src/base/config.ts';
import { serveResizes } from './resize-peer.ts';

const { dir, port, jobs, threads, vipsCache } = parseFlags(import.meta.url, {
  dir: opt.string('', 'the source images, held in memory', { required: true }),
  port: opt.int(0, 'port on 127.0.0.1 (0: any free one)', { min: 0, max: 65535 }),
  jobs: opt.int(0, 'at most N resizes at once, the rest wait (0: no bound)', { min: 0 }),
  threads: opt.int(0, "libvips threads per resize (0: sharp's default, one per core)", { min: 0 }),
  vipsCache: opt.bool(false, "keep libvips' operation cache on (sharp's default; off otherwise)"),
});
if (threads > 0) sharp.concurrency(threads);
if (!vipsCache) sharp.cache(false);
const MAX_PIXELS = 100_000_000; // the origin's --max-pixels default
// The origin's own semaphore (a plain counting one), so both queue resizes alike.
const slot = boundedSlot(jobs > 0 ? jobs : Number.POSITIVE_INFINITY);

serveResizes({
  dir,
  port,
  resize: ({ src, w, q, fmt }) =>
    slot(() => {
      const img = sharp(src, { limitInputPixels: MAX_PIXELS, failOn: 'truncated' }).autoOrient().resize({ width: w, withoutEnlargement: true }).toColourspace('srgb');
      return (fmt === 'webp' ? img.webp({ quality: q }) : img.jpeg({ quality: q })).toBuffer();
    }),
});
