// 20 KB (by default) reads over HTTP from a real `ugcfs dataserver`, against the bare Node
// ceiling (bench/peers/bare-node.ts: same bytes packed in one file, one positioned read per
// request) measured in the same run with the same wrk load. Prints JSON result lines.
//   node bin/run-ts.mjs bench/dataserver-reads.ts [--quick] [--size 20480] [--files 30] [--duration 5]
//   node bin/run-ts.mjs bench/dataserver-reads.ts --serve [--files N] [--size B]
//     starts a populated data server, prints {"msg":"serving","url","fids":FILE,"secret"} and
//     keeps running until SIGTERM, for load generators other than wrk.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgv } from '../src/config.ts';
import { encodeFid, newCookie } from '../src/file-id.ts';
import { startPeer, startUgcfs, runCommand } from './lib/spawn.ts';
import { runWrk, checkWrk } from './lib/wrk.ts';

const { flags } = parseArgv(process.argv.slice(2), new Set(['--quick', '--serve']));
const quick = flags.has('--quick');
const size = Number(flags.get('--size') ?? 20 * 1024);
const files = Number(flags.get('--files') ?? 30);
const duration = Number(flags.get('--duration') ?? (quick ? 3 : 8));
const SECRET = 'bench-secret';
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-dsreads-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const ds = await startUgcfs(['dataserver', '--data', join(work, 'ds'), '--port', '0', '--nameserver', 'http://127.0.0.1:9', '--heartbeat-ms', '60000'], {
  env: { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_LOG_LEVEL: 'info' },
});
const headers = { 'x-ugcfs-secret': SECRET };
await fetch(`${ds.url}/blocks/1`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
const fids: string[] = [];
const filesDir = join(work, 'files');
mkdirSync(filesDir);
for (let i = 0; i < files; i++) {
  const fid = encodeFid({ block: 1, key: BigInt(i + 1), cookie: newCookie() });
  const bytes = randomBytes(size);
  const r = await fetch(`${ds.url}/needles/${fid}`, { method: 'PUT', headers: { ...headers, 'x-ugcfs-mime': 'image/jpeg' }, body: bytes });
  if (r.status !== 201) throw new Error(`PUT failed: ${r.status} ${await r.text()}`);
  fids.push(fid);
  writeFileSync(join(filesDir, `${fid}.jpg`), bytes);
}

if (flags.has('--serve')) {
  const list = join(work, 'fids.txt');
  writeFileSync(list, fids.join('\n') + '\n');
  out({ msg: 'serving', url: ds.url, fids: list, secret: SECRET, path: '/needles/<fid>' });
  const stop = async () => {
    await ds.stop();
    rmSync(work, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
} else {
  try {
    const wrk = (await runCommand('which', ['wrk'])).stdout.trim();
    if (!wrk) throw new Error('wrk is not installed (apt-get install wrk)');
    const bare = await startPeer('bare-node', ['--dir', filesDir, '--pack', join(work, 'pack')]);
    const load = { wrk, threads: 2, connections: 32, durationS: duration };
    // Warm both (page cache, JIT) before measuring.
    await runWrk({ ...load, durationS: 1, url: ds.url, paths: fids.map((f) => `/needles/${f}`), headers });
    const d = checkWrk(await runWrk({ ...load, url: ds.url, paths: fids.map((f) => `/needles/${f}`), headers }), 'data server');
    await runWrk({ ...load, durationS: 1, url: bare.url, paths: fids.map((f) => `/static/${f}.jpg`) });
    const b = checkWrk(await runWrk({ ...load, url: bare.url, paths: fids.map((f) => `/static/${f}.jpg`) }), 'bare node');
    await bare.stop();
    out({ metric: `data server ${size / 1024} KB reads`, value: Math.round(d.rps), unit: 'req/s', p50us: d.p50, p99us: d.p99, command: d.command });
    out({ metric: `bare node ${size / 1024} KB reads`, value: Math.round(b.rps), unit: 'req/s', p50us: b.p50, p99us: b.p99 });
    out({ metric: `data server vs bare node ${size / 1024} KB reads`, value: Math.round((d.rps / b.rps) * 100) / 100, unit: 'x' });
  } finally {
    await ds.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
