// What the bench's sharp peers share: the sources read once and held in memory, the request
// (GET /resize/<name>?w=400&fmt=jpeg|webp&q=80), the answer, and the listening line. Each
// peer passes only how it resizes.
import { createServer } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ResizeAsk {
  src: Buffer;
  w: number;
  q: number;
  fmt: 'jpeg' | 'webp';
}

export function serveResizes(o: { dir: string; port: number; resize: (ask: ResizeAsk) => Promise<Buffer>; listening?: Record<string, unknown> }): void {
  const sources = new Map<string, Buffer>();
  for (const name of readdirSync(o.dir)) sources.set(name, readFileSync(join(o.dir, name)));
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
    o.resize({ src, w, q, fmt })
      .then((out) => {
        res.writeHead(200, { 'content-type': `image/${fmt}`, 'content-length': out.length });
        res.end(out);
      })
      .catch(() => res.writeHead(422).end());
  });
  server.keepAliveTimeout = 120_000;
  server.listen(o.port, '127.0.0.1', () => {
    const a = server.address();
    process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : o.port}`, ...o.listening }) + '\n');
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}
