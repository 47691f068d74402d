// Replicated 20 KB writes per second through the cluster client (assign + primary append +
// forwarding to the other replicas), for replicas 1, 2 and 3 with fsync on and off. Each
// configuration runs on a fresh real cluster: a name server and 3 data servers on racks
// a/b/c, one ClusterClient, N concurrent writers. Prints one JSON result line each, with
// the CPU every process spent per write (steadier than writes/s on a shared machine).
// Blocks are the data servers' default 256 MiB, as in the bench's writes section: with 64 MiB
// blocks (this script's size until 2026-11-21) a replicas-2 write cost the data servers ~100 µs
// more, from blocks filling every second or two under this load.
//   node bin/run-ts.mjs bench/cluster-write.ts [--quick] [--files N] [--concurrency N] [--replicas 1,2,3] [--fsync on,off] [--assign-batch N] [--write-batch N] [--block-mib N]
import { randomBytes } from 'node:crypto';
import { ClusterClient } from '../src/clients/cluster-client.ts';
import { startCluster } from '../test/helpers/cluster.ts';
import { scrapeMetrics } from '../test/helpers/metrics-scrape.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { ints, parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const f = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'fewer writes, for a smoke check'),
  files: opt.int(3000, 'measured writes per configuration', { min: 1 }),
  concurrency: opt.int(32, 'concurrent writers', { min: 1 }),
  // the cluster has 3 data servers, on 3 racks
  replicas: ints([1, 2, 3], 'replica counts to measure, one cluster each', { min: 1, max: 3 }),
  fsync: opt.list(['on', 'off'], 'fsync modes to measure', { choices: ['on', 'off'] }),
  assignBatch: opt.int(0, "fids per assign (0: the cluster client's default)", { min: 0 }),
  writeBatch: opt.int(0, "writes coalesced per request (0: the client's default; 1 = one PUT per write)", { min: 0 }),
  blockMib: opt.int(256, "data servers' block size in MiB", { min: 1 }),
}, { quick: { files: 400 } });
const { files, concurrency, blockMib } = f;
const assignBatch = f.assignBatch || undefined;
const writeBatch = f.writeBatch || undefined;
const replicaCounts = f.replicas;
const fsyncModes = f.fsync.map((s) => s === 'on');
const SIZE = 20 * 1024;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const log = (m: string) => process.stderr.write(`cluster-write: ${m}\n`);

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const GC = 'ugcfs_process_nodejs_gc_duration_seconds';

/** Sums the data servers' GC figures (their process metrics, by kind). */
async function gcTotals(urls: string[]): Promise<{ majorCount: number; majorS: number; allS: number }> {
  const t = { majorCount: 0, majorS: 0, allS: 0 };
  for (const url of urls) {
    const m = await scrapeMetrics(url);
    t.majorCount += m.value(`${GC}_count`, { kind: 'major' });
    t.majorS += m.value(`${GC}_sum`, { kind: 'major' });
    t.allS += m.value(`${GC}_sum`, {}, { sum: true });
  }
  return t;
}

// A pool of distinct payloads, so no layer can shortcut identical bodies.
const payloads = Array.from({ length: 64 }, () => randomBytes(SIZE));

for (const fsync of fsyncModes) {
  for (const replicas of replicaCounts) {
    log(`replicas ${replicas}, fsync ${fsync ? 'on' : 'off'}: starting cluster`);
    const c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas, blockSize: blockMib * 1024 * 1024, fsync, heartbeatMs: 500, deadAfterMs: 5000 });
    const client = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret, assignBatch, writeBatch });
    try {
      // Warm up: opens the writable blocks and the keep-alive connections, and lets the JIT
      // compile the write path (with 20 writes, the first measured thousand cost the data
      // servers twice the CPU of later ones).
      await Promise.all(Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 25; i++) await client.write(payloads[(w * 25 + i) % payloads.length]!, { mime: 'image/jpeg' });
      }));
      const latencies: number[] = [];
      let next = 0;
      let failed = 0;
      const cpuNow = () => ({
        dataservers: c.dataservers.reduce((s, d) => s + processCpuMs(d.child.pid!), 0),
        nameserver: processCpuMs(c.nameserver.child.pid!),
        client: processCpuMs(process.pid),
      });
      const gc0 = await gcTotals(c.dataservers.map((d) => d.url));
      const cpu0 = cpuNow();
      const started = process.hrtime.bigint();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < files) {
          const i = next++;
          const t = process.hrtime.bigint();
          try {
            await client.write(payloads[i % payloads.length]!, { mime: 'image/jpeg', owner: 'bench' });
            latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
          } catch {
            failed++;
          }
        }
      }));
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const cpu1 = cpuNow();
      const gc1 = await gcTotals(c.dataservers.map((d) => d.url));
      const usPerWrite = (k: keyof typeof cpu0) => Math.round(((cpu1[k] - cpu0[k]) * 1000) / Math.max(1, latencies.length));
      latencies.sort((a, b) => a - b);
      out({
        metric: `cluster_write_20k_r${replicas}_fsync_${fsync ? 'on' : 'off'}`,
        value: Math.round((latencies.length / seconds) * 10) / 10,
        unit: 'writes/s',
        replicas,
        fsync,
        files,
        failed,
        concurrency,
        blockMib,
        assignBatch: assignBatch ?? 'default',
        writeBatch: writeBatch ?? 'default',
        p50ms: Math.round(percentile(latencies, 50) * 100) / 100,
        p99ms: Math.round(percentile(latencies, 99) * 100) / 100,
        seconds: Math.round(seconds * 100) / 100,
        cpuUsPerWrite: { dataservers: usPerWrite('dataservers'), nameserver: usPerWrite('nameserver'), client: usPerWrite('client') },
        // the data servers' collector over the measured writes, from their process metrics
        dataserverGc: { markCompacts: gc1.majorCount - gc0.majorCount, majorMs: Math.round((gc1.majorS - gc0.majorS) * 1000), allMs: Math.round((gc1.allS - gc0.allS) * 1000) },
      });
    } finally {
      await c.stop();
    }
  }
}
