// The runtime's ceiling for serving stored bytes: a bare node:http server that keeps every
// file packed in one file (like a ugcfs block) with an in-memory index, and answers each
// GET with one positioned read into a fresh buffer. No framework, no checks, no metrics:
// whatever ugcfs adds on top of this is the cost of being a real server. The read goes
// through libuv's thread pool (fs.read), as Node reads files by default; with --sync-reads it
// is a synchronous pread on the event loop, as the data server reads hot records
// (dataserver/README.md, "Reads in place"), so the ceiling can be read both ways.
//   node bin/run-ts.mjs bench/peers/bare-node.ts --dir FILES --pack PACKFILE [--port 0] [--sync-reads]
import { createServer } from 'node:http';
import { openSync, read, readSync, readdirSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';
import { join, extname } from 'node:path';
import { parseFlags } from '../lib/flags.ts';
import { opt } from '../../src/base/config.ts';

const { dir, pack: packPath, port, syncReads } = parseFlags(import.meta.url, {
  dir: opt.string('', 'the files to serve', { required: true }),
  pack: opt.string('', 'the file they are packed into (overwritten)', { required: true }),
  port: opt.int(0, 'port on 127.0.0.1 (0: any free one)', { min: 0, max: 65535 }),
  syncReads: opt.bool(false, "synchronous pread on the event loop instead of libuv's thread pool"),
});

const TYPES: Record<string, string> = { '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };
const index = new Map<string, { offset: number; size: number; type: string }>();
writeFileSync(packPath, '');
let offset = 0;
for (const name of readdirSync(dir).sort()) {
  const bytes = readFileSync(join(dir, name));
  const pad = (8 - (bytes.length % 8)) % 8;
  appendFileSync(packPath, Buffer.concat([bytes, Buffer.alloc(pad)]));
  index.set(name, { offset, size: bytes.length, type: TYPES[extname(name)] ?? 'application/octet-stream' });
  offset += bytes.length + pad;
}
const fd = openSync(packPath, 'r');

const server = createServer((req, res) => {
  const name = req.url!.startsWith('/static/') ? req.url!.slice(8) : '';
  const e = index.get(name);
  if (!e) {
    res.writeHead(404).end();
    return;
  }
  const buf = Buffer.allocUnsafe(e.size);
  const send = (err: Error | null, n: number) => {
    if (err || n !== e.size) {
      res.writeHead(500).end();
      return;
    }
    res.writeHead(200, { 'content-type': e.type, 'content-length': e.size });
    res.end(buf);
  };
  if (!syncReads) return void read(fd, buf, 0, e.size, e.offset, send);
  let n = -1;
  try {
    n = readSync(fd, buf, 0, e.size, e.offset);
  } catch (err) {
    return send(err as Error, n);
  }
  send(null, n);
});
server.keepAliveTimeout = 120_000;
server.listen(port, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : port}` }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
