import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { startCluster } from './lib/cluster.ts';
import { UGCFS_BIN, runCommand } from './lib/spawn.ts';
const work = '/tmp/mig/perf'; rmSync(work, { recursive: true, force: true });
const tree = join(work, 'tree');
const pool: Buffer[] = [];
for (let i = 0; i < 32; i++) { const side = 100 + i * 15; pool.push(await sharp({ create: { width: side, height: side, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).jpeg({ quality: 80 }).toBuffer()); }
for (let i = 0; i < 400; i++) { const d = join(tree, String(i % 20)); mkdirSync(d, { recursive: true }); writeFileSync(join(d, `f${i}.jpg`), pool[i % 32]!); }
const fsync = process.argv[2] ?? 'true';
const c = await startCluster({ dir: join(work, 'c'), dataservers: 2, replicas: 2, dataserverArgs: [`--fsync=${fsync}`] });
const extra = process.argv.slice(3);
const t0 = Date.now();
const r = await runCommand(process.execPath, [...extra, UGCFS_BIN, 'migrate', tree, '--prefix', '/p', '--state', join(work, 's'), '--json'], { env: { ...process.env, ...c.env, UGCFS_NAMESERVER: c.nameserver.url }, cwd: work });
console.log('fsync', fsync, 'secs', (Date.now() - t0) / 1000, r.stdout.slice(0, 200));
await c.stop();
