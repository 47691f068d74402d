// The framework's ceiling for a cache hit: one fastify route answering with a Buffer that
// is already in memory. The origin's cache-hit path cannot beat this; the gap between the
// two is the cost of parsing the URL, looking up the cache and setting caching headers.
//   node bin/run-ts.mjs bench/peers/bare-fastify.ts --dir FILES [--port 0]
import Fastify from 'fastify';
import { readdirSync, readFileSync } from 'node:fs';
import { join, extname } from 'node:path';
import { parseFlags } from '../lib/flags.ts';
import { opt } from '../../src/base/config.ts';

const { dir, port } = parseFlags(import.meta.url, {
  dir: opt.string('', 'the files to serve, read into memory at start', { required: true }),
  port: opt.int(0, 'port on 127.0.0.1 (0: any free one)', { min: 0, max: 65535 }),
});

const TYPES: Record<string, string> = { '.jpg': 'image/jpeg', '.png': 'image/png', '.webp': 'image/webp' };
const files = new Map<string, { bytes: Buffer; type: string }>();
for (const name of readdirSync(dir)) files.set(name, { bytes: readFileSync(join(dir, name)), type: TYPES[extname(name)] ?? 'application/octet-stream' });

const app = Fastify({ logger: false, keepAliveTimeout: 120_000 });
app.get<{ Params: { name: string } }>('/static/:name', async (req, reply) => {
  const f = files.get(req.params.name);
  if (!f) return reply.code(404).send();
  reply.header('content-type', f.type);
  return f.bytes;
});
const url = await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(JSON.stringify({ msg: 'listening', url }) + '\n');
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
