// The image pipeline's ceiling: a bare node:http server that resizes a source image already
// in memory with sharp and sends the result. It does the same work the origin does for a
// miss (auto-orient, resize, sRGB, strip metadata, encode) and nothing else: no cache, no
// fetch of the original, no limits.
//   node bin/run-ts.mjs bench/peers/bare-sharp.ts --dir PHOTOS [--port 0]
//   GET /resize/<name>?w=400&fmt=jpeg|webp&q=80
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { parseArgv } from '../../src/config.ts';

const { flags } = parseArgv(process.argv.slice(2));
const dir = String(flags.get('--dir'));
const port = Number(flags.get('--port') ?? 0);
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
  const img = sharp(src).rotate().resize({ width: w, withoutEnlargement: true }).toColourspace('srgb');
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
  process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : port}` }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
