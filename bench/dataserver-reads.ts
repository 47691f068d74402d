// 20 KB (by default) reads over HTTP from a real `ugcfs dataserver`, against the bare Node
// ceiling (bench/peers/bare-node.ts: same bytes packed in one file, one positioned read per
// request) measured in the same run with the same wrk load, in interleaved rounds (the
// machine is shared: a ratio of figures taken back to back drifts far less than either
// figure). Prints JSON result lines; the ratio is the median of the per-round ratios. Both
// the data server and bare Node are measured reading in place and through libuv's thread
// pool (--sync-reads on one and off on a second data server holding the same records).
//   node bin/run-ts.mjs bench/dataserver-reads.ts [--quick] [--size 20480] [--files 30] [--duration 8] [--rounds 3]
//     [--profile DIR]   runs both servers under node --cpu-prof and prints where their time went
//   node bin/run-ts.mjs bench/dataserver-reads.ts --serve [--files N] [--size B]
//     starts a populated data server, prints {"msg":"serving","url","fids":FILE,"secret"} and
//     keeps running until SIGTERM, for load generators other than wrk.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFid, newCookie } from '../src/wire/file-id.ts';
import { HEADERS } from '../src/wire/protocol.ts';
import { startPeer, startUgcfs, runCommand } from './lib/spawn.ts';
import { SECRET } from './lib/cluster.ts';
import { runWrk, checkWrk, type WrkResult } from './lib/wrk.ts';
import { median, medianRatio } from './lib/stats.ts';
import { nowUs, summarizeProfiles } from './lib/cpu-profile.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'shorter runs, for a smoke check'),
  serve: opt.bool(false, 'start a populated data server, print its URL and fids, and keep running until SIGTERM'),
  size: opt.int(20 * 1024, 'bytes per file (a number, or with a unit: 64k)', { min: 1 }),
  files: opt.int(30, 'files stored and read round-robin', { min: 1 }),
  duration: opt.number(8, 'seconds per wrk run', { min: 1 }),
  rounds: opt.int(3, 'interleaved rounds per figure', { min: 1 }),
  profile: opt.string('', 'run both servers under node --cpu-prof into this directory and print where their time went'),
}, { quick: { duration: 3 } });
const { size, files, duration, rounds } = flags;
const profileDir = flags.profile || undefined;
const profFlags = (who: string) => (profileDir ? ['--cpu-prof', '--cpu-prof-dir', join(profileDir, who)] : []);
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

/** One wrk run, with the server's CPU microseconds per request beside it. */
async function measured(pid: number, what: string, o: Parameters<typeof runWrk>[0]): Promise<WrkResult & { cpuUs: number }> {
  const c0 = processCpuMs(pid);
  const r = checkWrk(await runWrk(o), what);
  return { ...r, cpuUs: ((processCpuMs(pid) - c0) * 1000) / Math.max(1, r.requests) };
}

const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-dsreads-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const ds = await startUgcfs(['dataserver', '--data', join(work, 'ds'), '--port', '0', '--nameserver', 'http://127.0.0.1:9', '--heartbeat-ms', '60000'], {
  env: { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_LOG_LEVEL: 'info' },
  nodeFlags: profFlags('dataserver'),
});
// The same data server with its reads through the thread pool (--sync-reads=false), holding
// the same records, so the effect of reading in place is measured in the same run.
const dsPool = flags.serve
  ? undefined
  : await startUgcfs(['dataserver', '--data', join(work, 'ds-pool'), '--port', '0', '--nameserver', 'http://127.0.0.1:9', '--heartbeat-ms', '60000', '--sync-reads=false'], {
      env: { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_LOG_LEVEL: 'info' },
    });
const headers = { 'x-ugcfs-secret': SECRET };
for (const server of [ds, dsPool]) {
  if (server) await fetch(`${server.url}/blocks/1`, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
}
const fids: string[] = [];
const filesDir = join(work, 'files');
mkdirSync(filesDir);
for (let i = 0; i < files; i++) {
  const fid = encodeFid({ block: 1, key: BigInt(i + 1), cookie: newCookie() });
  const bytes = randomBytes(size);
  for (const server of [ds, dsPool]) {
    if (!server) continue;
    const r = await fetch(`${server.url}/needles/${fid}`, { method: 'PUT', headers: { ...headers, 'x-ugcfs-mime': 'image/jpeg' }, body: bytes });
    if (r.status !== 201) throw new Error(`PUT failed: ${r.status} ${await r.text()}`);
  }
  fids.push(fid);
  writeFileSync(join(filesDir, `${fid}.jpg`), bytes);
}

if (flags.serve) {
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
    const bare = await startPeer('bare-node', ['--dir', filesDir, '--pack', join(work, 'pack')], { nodeFlags: profFlags('bare-node') });
    const bareSync = await startPeer('bare-node', ['--dir', filesDir, '--pack', join(work, 'pack-sync'), '--sync-reads']);
    const load = { wrk, threads: 2, connections: 32, durationS: duration };
    const dsPaths = { url: ds.url, paths: fids.map((f) => `/needles/${f}`), headers };
    // How the cluster client reads: it checks the data's CRC itself (dataserver/README.md).
    const dsClientPaths = { ...dsPaths, headers: { ...headers, [HEADERS.verify]: 'client' } };
    const barePaths = { url: bare.url, paths: fids.map((f) => `/static/${f}.jpg`) };
    const bareSyncPaths = { ...barePaths, url: bareSync.url };
    const dsPoolPaths = { ...dsClientPaths, url: dsPool!.url };
    // Warm both (page cache, JIT) before measuring.
    await runWrk({ ...load, durationS: 1, ...dsPaths });
    await runWrk({ ...load, durationS: 1, ...dsClientPaths });
    await runWrk({ ...load, durationS: 1, ...barePaths });
    await runWrk({ ...load, durationS: 1, ...bareSyncPaths });
    await runWrk({ ...load, durationS: 1, ...dsPoolPaths });
    const d: (WrkResult & { cpuUs: number })[] = [];
    const dc: (WrkResult & { cpuUs: number })[] = [];
    const b: (WrkResult & { cpuUs: number })[] = [];
    const bs: (WrkResult & { cpuUs: number })[] = [];
    const dp: (WrkResult & { cpuUs: number })[] = [];
    const from = nowUs();
    for (let r = 0; r < rounds; r++) {
      d.push(await measured(ds.pid, 'data server', { ...load, ...dsPaths }));
      dc.push(await measured(ds.pid, 'data server, client-checked', { ...load, ...dsClientPaths }));
      b.push(await measured(bare.pid, 'bare node', { ...load, ...barePaths }));
      bs.push(await measured(bareSync.pid, 'bare node, reads in place', { ...load, ...bareSyncPaths }));
      dp.push(await measured(dsPool!.pid, 'data server, client-checked, --sync-reads=false', { ...load, ...dsPoolPaths }));
    }
    const to = nowUs();
    await bare.stop();
    await bareSync.stop();
    await dsPool!.stop();
    const kb = size / 1024;
    const rps = (xs: WrkResult[]) => Math.round(median(xs.map((x) => x.rps)));
    const p = (xs: WrkResult[], k: 'p50' | 'p99') => Math.round(median(xs.map((x) => x[k])));
    const cpu = (xs: { cpuUs: number }[]) => Math.round(median(xs.map((x) => x.cpuUs)) * 10) / 10;
    out({ metric: `data server ${kb} KB reads`, value: rps(d), unit: 'req/s', runs: d.map((x) => Math.round(x.rps)), p50us: p(d, 'p50'), p99us: p(d, 'p99'), cpuUsPerReq: cpu(d), command: d[0]!.command });
    out({ metric: `data server ${kb} KB reads, client-checked`, value: rps(dc), unit: 'req/s', runs: dc.map((x) => Math.round(x.rps)), p50us: p(dc, 'p50'), p99us: p(dc, 'p99'), cpuUsPerReq: cpu(dc) });
    out({ metric: `data server ${kb} KB reads, client-checked, --sync-reads=false`, value: rps(dp), unit: 'req/s', runs: dp.map((x) => Math.round(x.rps)), p50us: p(dp, 'p50'), p99us: p(dp, 'p99'), cpuUsPerReq: cpu(dp) });
    out({ metric: `bare node ${kb} KB reads`, value: rps(b), unit: 'req/s', runs: b.map((x) => Math.round(x.rps)), p50us: p(b, 'p50'), p99us: p(b, 'p99'), cpuUsPerReq: cpu(b) });
    out({ metric: `bare node ${kb} KB reads, in place (synchronous)`, value: rps(bs), unit: 'req/s', runs: bs.map((x) => Math.round(x.rps)), p50us: p(bs, 'p50'), p99us: p(bs, 'p99'), cpuUsPerReq: cpu(bs) });
    const ratio = medianRatio(d.map((x) => x.rps), b.map((x) => x.rps));
    out({ metric: `data server vs bare node ${kb} KB reads`, value: Math.round(ratio * 100) / 100, unit: 'x', rounds });
    const ratioC = medianRatio(dc.map((x) => x.rps), b.map((x) => x.rps));
    out({ metric: `data server client-checked vs bare node ${kb} KB reads`, value: Math.round(ratioC * 100) / 100, unit: 'x', rounds });
    const ratioP = medianRatio(dc.map((x) => x.rps), dp.map((x) => x.rps));
    out({ metric: `data server client-checked, reads in place vs through the thread pool, ${kb} KB reads`, value: Math.round(ratioP * 100) / 100, unit: 'x', rounds });
    const ratioS = medianRatio(dc.map((x) => x.rps), bs.map((x) => x.rps));
    out({ metric: `data server client-checked vs bare node reading in place ${kb} KB reads`, value: Math.round(ratioS * 100) / 100, unit: 'x', rounds });
    if (profileDir) {
      await ds.stop();
      for (const who of ['dataserver', 'bare-node']) {
        const sum = summarizeProfiles(join(profileDir, who), { fromUs: from, toUs: to }, 40);
        if (!sum) continue;
        out({ profile: who, busyMs: Math.round(sum.busyMs), totalMs: Math.round(sum.totalMs) });
        for (const f of sum.functions) out({ profile: who, fn: f.name, ms: Math.round(f.selfMs), share: Math.round(f.share * 1000) / 10 });
      }
    }
  } finally {
    await ds.stop();
    await dsPool?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}
