// Appends per second, fsync on and off: straight through the storage engine (what group
// commit can do) and over HTTP against a real `ugcfs dataserver` (single copy, no replicas;
// the client is undici in this process, so it shares the 2 cores with the server).
//   node bin/run-ts.mjs bench/dataserver-appends.ts [--quick] [--size 20480] [--concurrency 64] [--seconds N]
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { BlockStore } from '../dataserver/block-store.ts';
import { createMetrics } from '../src/base/metrics.ts';
import { encodeFid } from '../src/wire/file-id.ts';
import { startUgcfs } from './lib/spawn.ts';
import { SECRET } from './lib/cluster.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { size, concurrency, seconds } = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'shorter runs, for a smoke check'),
  size: opt.int(20 * 1024, 'bytes per append (a number, or with a unit: 64k)', { min: 1 }),
  concurrency: opt.int(64, 'appends in flight', { min: 1 }),
  seconds: opt.number(8, 'seconds per measurement', { min: 1 }),
}, { quick: { seconds: 3 } });
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-dsappends-'));
const data = randomBytes(size);

async function forDuration(fn: (i: number) => Promise<void>): Promise<number> {
  let next = 1;
  let done = 0;
  const deadline = Date.now() + seconds * 1000;
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        await fn(next++);
        done++;
      }
    }),
  );
  return done / (Number(process.hrtime.bigint() - t0) / 1e9);
}

async function engine(fsync: boolean): Promise<void> {
  const { metrics, registry } = createMetrics('dataserver');
  const store = await BlockStore.open({ dir: join(work, `engine-${fsync}`), fsync, blockSize: 1 << 30, metrics });
  let block = 1;
  await store.createBlock(block);
  // A full block is replaced once: the writers that find it full wait for its successor to
  // exist (a block number taken before it is created would be "not on this data server").
  let next: Promise<void> | undefined;
  const rate = await forDuration(async (i) => {
    for (;;) {
      const b = block;
      try {
        await store.put(b, { key: BigInt(i), cookie: i, uploadTime: Date.now(), mime: 'image/jpeg', owner: 'bench' }, data);
        return;
      } catch (err) {
        if ((err as { code?: string }).code !== 'UGCFS_ERR_BLOCK_READONLY') throw err;
        if (block === b) next ??= store.createBlock(b + 1).then(() => {
          block = b + 1;
          next = undefined;
        });
        await next;
      }
    }
  });
  const fsyncs = (await registry.getSingleMetric('ugcfs_fsyncs_total')!.get()).values[0]?.value ?? 0;
  await store.close();
  out({ metric: `engine appends/s fsync ${fsync ? 'on' : 'off'}`, value: Math.round(rate), unit: 'ops/s', size, concurrency, fsyncs });
}

async function http(fsync: boolean): Promise<void> {
  const ds = await startUgcfs(['dataserver', '--data', join(work, `http-${fsync}`), '--port', '0', '--nameserver', 'http://127.0.0.1:9', '--heartbeat-ms', '60000', `--fsync=${fsync}`, '--block-size', '1G'], {
    env: { UGCFS_CLUSTER_SECRET: SECRET },
  });
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 30_000 });
  try {
    await request(`${ds.url}/blocks/1`, { method: 'POST', headers: { 'x-ugcfs-secret': SECRET, 'content-type': 'application/json' }, body: '{}', dispatcher: agent }).then((r) => r.body.dump());
    const rate = await forDuration(async (i) => {
      const fid = encodeFid({ block: 1, key: BigInt(i), cookie: i });
      const r = await request(`${ds.url}/needles/${fid}`, { method: 'PUT', headers: { 'x-ugcfs-secret': SECRET, 'x-ugcfs-mime': 'image/jpeg', 'content-type': 'application/octet-stream' }, body: data, dispatcher: agent });
      await r.body.dump();
      if (r.statusCode !== 201) throw new Error(`PUT answered ${r.statusCode}`);
    });
    out({ metric: `HTTP appends/s fsync ${fsync ? 'on' : 'off'}`, value: Math.round(rate), unit: 'ops/s', size, concurrency });
  } finally {
    await agent.close();
    await ds.stop();
  }
}

try {
  for (const fsync of [true, false]) await engine(fsync);
  for (const fsync of [true, false]) await http(fsync);
} finally {
  rmSync(work, { recursive: true, force: true });
}
