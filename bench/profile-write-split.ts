// Splits one replicated write into its two hops (assign at the name server, PUT to the
// primary, which forwards to the other replicas) and times each, one writer at a time and
// 16 at a time, so a slow write can be pinned on the hop that causes it. It also reports
// the CPU each process spent per write (from /proc: user + system time): on a shared
// 2-core machine throughput swings with the neighbours' load, CPU per write does not.
//   node bin/run-ts.mjs bench/profile-write-split.ts [--replicas 2] [--size 20480] [--fsync false] [--count 100] [--concurrency 1,16]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, SECRET } from './lib/cluster.ts';
import { callJson, callRaw } from '../src/clients/http-client.ts';
import { NS_ROUTES, DS_ROUTES, HEADERS, type AssignResult } from '../src/wire/protocol.ts';
import { percentile } from './lib/stats.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { ints, parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { replicas, size, fsync, count, concurrency: concurrencies } = parseFlags(import.meta.url, {
  replicas: opt.int(2, 'replicas per write (on max(3, this) data servers)', { min: 1 }),
  size: opt.int(20480, 'bytes per write', { min: 1 }),
  // passed on as the data servers' --fsync=VALUE
  fsync: opt.string('false', 'data servers fsync each group commit', { choices: ['true', 'false'] }),
  count: opt.int(100, 'writes per writer', { min: 1 }),
  concurrency: ints([1, 16], 'writer counts to measure, one after the other', { min: 1 }),
});
const dir = mkdtempSync(join(tmpdir(), 'ugcfs-bench-split-'));
const c = await startCluster({ dir, dataservers: Math.max(3, replicas), replicas, dataserverArgs: [`--fsync=${fsync}`] });
const body = randomBytes(size);

function cpuNow(): { ds: number; ns: number; client: number } {
  return { ds: c.dataservers.reduce((s, d) => s + processCpuMs(d.pid), 0), ns: processCpuMs(c.nameserver.pid), client: processCpuMs(process.pid) };
}

try {
  for (const conc of concurrencies) {
    const assign: number[] = [];
    const put: number[] = [];
    const cpu0 = cpuNow();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: conc }, async () => {
      for (let i = 0; i < count; i++) {
        let t1 = 0;
        let t2 = 0;
        // A block just allocated may not be created on its data servers yet: the cluster
        // client retries on another assign, and so does this.
        for (let attempt = 0; ; attempt++) {
          t1 = performance.now();
          const a = await callJson<AssignResult>(c.nameserver.url + NS_ROUTES.assign, { method: 'POST', body: { replicas }, secret: SECRET });
          t2 = performance.now();
          const headers: Record<string, string> = { [HEADERS.mime]: 'application/octet-stream' };
          if (a.replicas.length > 1) headers[HEADERS.replicas] = a.replicas.slice(1).map((x) => x.url).join(',');
          const r = await callRaw(a.replicas[0]!.url + DS_ROUTES.needle.replace(':fid', a.fid), { method: 'PUT', body, secret: SECRET, headers });
          if (r.status === 201) break;
          if (attempt >= 20) throw new Error(`PUT -> ${r.status} ${r.body.toString()}`);
          await new Promise((res) => setTimeout(res, 50));
        }
        assign.push(t2 - t1);
        put.push(performance.now() - t2);
      }
    }));
    const secs = (performance.now() - t0) / 1000;
    const cpu1 = cpuNow();
    const n = assign.length;
    const perWrite = (a: number, b: number) => `${Math.round(((b - a) * 1000) / n)} µs`;
    const f = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(2)} ms p99 ${percentile(xs, 99).toFixed(2)} ms`;
    process.stdout.write(JSON.stringify({
      metric: `writes/s at concurrency ${conc}`, value: Math.round(n / secs), unit: 'ops/s', replicas, size, fsync, assign: f(assign), put: f(put),
      cpuPerWrite: { dataservers: perWrite(cpu0.ds, cpu1.ds), nameserver: perWrite(cpu0.ns, cpu1.ns), client: perWrite(cpu0.client, cpu1.client) },
    }) + '\n');
  }
} finally {
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
}
