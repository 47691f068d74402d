// sharp as a user runs it: a small node:http server that resizes a source image per request
// with sharp's defaults and nothing else. No sharp.concurrency() and no sharp.cache() call
// (libvips' thread count and operation cache are sharp's own; on glibc Linux sharp picks one
// libvips thread per image), no bound on resizes at once (libuv's thread pool, 4 by default,
// runs them), no pixel limit or timeout beyond sharp's, no cache of outputs. Per request:
// rotate() (EXIF orientation), resize to the width, encode at quality q. The sources are
// read once and held in memory, as the origin holds an original after its first fetch.
//   node bin/run-ts.mjs bench/peers/sharp-defaults.ts --dir PHOTOS [--port 0]
//   GET /resize/<name>?w=400&fmt=jpeg|webp&q=80
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseFlags } from '../lib/flags.ts';
import { opt } from '../../src/base/config.ts';

const { dir, port } = parseFlags(import.meta.url, {
  dir: opt.string('', 'the source images, held in memory', { required: true }),
  port: opt.int(0, 'port on 127.0.0.1 (0: any free one)', { min: 0, max: 65535 }),
});
const sources = new Map<string, Buffer>();
for (const name of readdirSync(dir)) sources.set(name, readFileSync(join(dir, name)));

const server = createServer((req, res) => {
  const u = new URL(req.url!, 'http://x');
  const src = sources.get(decodeURIComponent(u.pathname.replace(/^\/resize\//, '')));
  const w = Number(u.searchParams.get('w') ?? 400);
  const q = Number(u.searchParams.get('q') ?? 80);
  const fmt = u.searchParams.get('fmt') === 'webp' ? 'webp' : 'jpeg';
  if (!src || !(w > 0 && w <= 8192)) {
    res.writeHead(404).end();
    return;
  }
  const img = sharp(src).rotate().resize({ width: w });
  (fmt === 'webp' ? img.webp({ quality: q }) : img.jpeg({ quality: q }))
    .toBuffer()
    .then((out) => {
      res.writeHead(200, { 'content-type': `image/${fmt}`, 'content-length': out.length });
      res.end(out);
    })
    .catch(() => res.writeHead(422).end());
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : port}`, vipsThreads: sharp.concurrency() }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
