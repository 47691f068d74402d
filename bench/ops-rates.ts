// How fast cluster operations move bytes, and what foreground reads get meanwhile: a real
// cluster (name server + 3 data servers), filled with files; a 4th data server joins and
// `rebalance` runs, then two thirds of the files are deleted and `compact` runs. Readers
// keep reading random files through the cluster client the whole time. Prints JSON lines:
//   {"metric":"rebalance copy rate","value":MB/s,...,"readMBpsDuring","readMBpsBaseline"}
//   {"metric":"compaction rate","value":MB/s (block bytes rewritten),...}
//   node bin/run-ts.mjs bench/ops-rates.ts [--quick] [--mb 64] [--file-kb 64] [--readers 4]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClusterClient } from '../src/clients/cluster-client.ts';
import { callJson } from '../src/clients/http-client.ts';
import { NS_ROUTES, type ClusterStatus, type Operation } from '../src/wire/protocol.ts';
import { SECRET, startCluster } from './lib/cluster.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const { quick, mb: totalMb, fileKb, readers } = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'less data and smaller blocks, for a smoke check'),
  mb: opt.number(64, 'MB of files written before rebalancing', { min: 1 }),
  fileKb: opt.int(64, 'KB per file', { min: 1 }),
  readers: opt.int(4, 'foreground readers', { min: 1 }),
}, { quick: { mb: 16 } });
const blockSize = quick ? 1 << 20 : 4 << 20;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (bytes: number, ms: number) => (ms > 0 ? bytes / 1e6 / (ms / 1000) : 0);

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-ops-'));
const dsArgs = ['--block-size', String(blockSize), '--heartbeat-ms', '250'];
const cluster = await startCluster({ dir: work, dataservers: 3, replicas: 2, dataserverArgs: dsArgs, nameserverArgs: ['--heartbeat-ms', '250', '--startup-grace-ms', '500'] });
const client = new ClusterClient({ nameserver: cluster.nameserver.url, secret: SECRET, locationTtlMs: 2000 });

async function op(body: Record<string, unknown>): Promise<Operation> {
  let o = await callJson<Operation>(cluster.nameserver.url + NS_ROUTES.ops, { method: 'POST', body, secret: SECRET });
  while (o.state === 'running') {
    await sleep(100);
    o = await callJson<Operation>(cluster.nameserver.url + NS_ROUTES.op.replace(':id', o.id), { secret: SECRET });
  }
  if (o.state !== 'done') throw new Error(`${o.kind} ended ${o.state}: ${o.message}`);
  return o;
}

/** Readers over `fids`; `window()` returns and resets the bytes and reads counted since the last call. */
function foreground(fids: string[]) {
  let bytes = 0;
  let reads = 0;
  let errors = 0;
  let since = Date.now();
  let stop = false;
  const loops = Array.from({ length: readers }, async () => {
    while (!stop) {
      const fid = fids[Math.floor(Math.random() * fids.length)]!;
      try {
        bytes += (await client.read(fid)).data.length;
        reads++;
      } catch {
        errors++;
      }
    }
  });
  return {
    window() {
      const now = Date.now();
      const r = { mbps: mb(bytes, now - since), readsPerSec: (reads / (now - since)) * 1000, errors };
      bytes = 0;
      reads = 0;
      since = now;
      return r;
    },
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

try {
  const fids: string[] = [];
  const n = Math.max(8, Math.round((totalMb * 1024) / fileKb));
  for (let i = 0; i < n; i += 8) {
    const batch = await Promise.all(Array.from({ length: Math.min(8, n - i) }, () => client.write(randomBytes(fileKb * 1024), { mime: 'application/octet-stream' })));
    fids.push(...batch.map((w) => w.fid));
  }
  const fg = foreground(fids);
  await sleep(quick ? 1500 : 3000);
  const baseline = fg.window();

  await cluster.addDataserver({ rack: 'r3' });
  for (;;) {
    const s = await callJson<ClusterStatus>(cluster.nameserver.url + NS_ROUTES.status, { secret: SECRET });
    if (s.dataservers.filter((d) => d.alive).length >= 4) break;
    await sleep(100);
  }
  fg.window();
  const rb = await op({ kind: 'rebalance' });
  const during = fg.window();
  const rbMs = (rb.finishedAt ?? Date.now()) - rb.startedAt;
  out({ metric: 'rebalance copy rate', value: Number(mb(rb.bytesDone, rbMs).toFixed(2)), unit: 'MB/s', moves: rb.done, bytes: rb.bytesDone, seconds: rbMs / 1000, readMBpsDuring: Number(during.mbps.toFixed(1)), readsPerSecDuring: Math.round(during.readsPerSec), readMBpsBaseline: Number(baseline.mbps.toFixed(1)), readErrors: during.errors, dataMB: totalMb, blockSize });

  const keep = fids.filter((_, i) => i % 3 === 0);
  await fg.stop();
  for (const fid of fids.filter((_, i) => i % 3 !== 0)) await client.delete(fid);
  await sleep(800); // reports with the deleted shares
  const before = await callJson<ClusterStatus>(cluster.nameserver.url + NS_ROUTES.status, { secret: SECRET });
  const fg2 = foreground(keep);
  await sleep(quick ? 1000 : 2000);
  const baseline2 = fg2.window();
  const cp = await op({ kind: 'compact', threshold: 0.1 });
  const during2 = fg2.window();
  await fg2.stop();
  const cpMs = (cp.finishedAt ?? Date.now()) - cp.startedAt;
  // Compaction reads every byte of a block and rewrites the live ones: the rate counts the block bytes it went through.
  out({ metric: 'compaction rate', value: Number(mb(before.usedBytes, cpMs).toFixed(2)), unit: 'MB/s', blockCopies: cp.done, reclaimedMB: Number((cp.bytesDone / 1e6).toFixed(2)), reclaimedMBps: Number(mb(cp.bytesDone, cpMs).toFixed(2)), seconds: cpMs / 1000, readMBpsDuring: Number(during2.mbps.toFixed(1)), readsPerSecDuring: Math.round(during2.readsPerSec), readMBpsBaseline: Number(baseline2.mbps.toFixed(1)), readErrors: during2.errors });
} finally {
  await client.close();
  await cluster.stop();
  rmSync(work, { recursive: true, force: true });
}
