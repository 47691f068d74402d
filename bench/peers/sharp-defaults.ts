// sharp as a user runs it: a small node:http server that resizes a source image per request
// with sharp's defaults and nothing else. No sharp.concurrency() and no sharp.cache() call
// (libvips' thread count and operation cache are sharp's own; on glibc Linux sharp picks one
// libvips thread per image), no bound on resizes at once (libuv's thread pool, 4 by default,
// runs them), no pixel limit or timeout beyond sharp's, no cache of outputs. Per request:
// rotate() (EXIF orientation), resize to the width, encode at quality q. The sources are
// read once and held in memory, as the origin holds an original after its first fetch.
//   node bin/run-ts.mjs bench/peers/sharp-defaults.ts --dir PHOTOS [--port 0]
//   GET /resize/<name>?w=400&fmt=jpeg|webp&q=80
import sharp from 'sharp';
import { serveResizes } from './resize-peer.ts';
import { parseFlags } from '../lib/flags.ts';
import { opt } from '../../src/base/config.ts';

const { dir, port } = parseFlags(import.meta.url, {
  dir: opt.string('', 'the source images, held in memory', { required: true }),
  port: opt.int(0, 'port on 127.0.0.1 (0: any free one)', { min: 0, max: 65535 }),
});
serveResizes({
  dir,
  port,
  resize: ({ src, w, q, fmt }) => {
    const img = sharp(src).rotate().resize({ width: w });
    return (fmt === 'webp' ? img.webp({ quality: q }) : img.jpeg({ quality: q })).toBuffer();
  },
  listening: { vipsThreads: sharp.concurrency() },
});
