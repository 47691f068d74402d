// What request tracing (src/base/trace.ts) costs on the hot read path: data-server 20 KB
// needle reads.
//   1. Off (the default), in this process before any tracer exists: the calls the request
//      path makes into trace.ts — the chain's `tracer !== undefined`, RouteMeter.done's
//      currentSpan(), and a peer call's startClientSpan() — timed per call against an empty
//      loop. No span, id or closure is made (trace.ts); this puts a number on the rest.
//   2. Off against on, end to end: three data servers holding the same records, two started
//      with --otlp-endpoint to a sink in this process (one recording every read as a root span,
//      one 1 % of them), read by wrk in interleaved rounds; req/s and server CPU per request.
// Prints JSON result lines.
//   node bin/run-ts.mjs bench/dataserver-trace-overhead.ts [--quick] [--size 20480] [--files 30] [--duration 8] [--rounds 3]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { currentSpan, startClientSpan, tracingHere } from '../src/base/trace.ts';
import { encodeFid, newCookie } from '../src/wire/file-id.ts';
import { startUgcfs, runCommand } from './lib/spawn.ts';
import { SECRET } from './lib/cluster.ts';
import { runWrk, checkWrk, type WrkResult } from './lib/wrk.ts';
import { median, medianRatio } from './lib/stats.ts';
import { processCpuMs } from './lib/process-cpu.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/base/config.ts';

const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'shorter runs, for a smoke check'),
  size: opt.int(20 * 1024, 'bytes per file (a number, or with a unit: 64k)', { min: 1 }),
  files: opt.int(30, 'files stored and read round-robin', { min: 1 }),
  duration: opt.number(8, 'seconds per wrk run', { min: 1 }),
  rounds: opt.int(3, 'interleaved rounds per figure', { min: 1 }),
}, { quick: { duration: 3, rounds: 2 } });
const { size, files, duration, rounds } = flags;
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

// ---- 1. the off path, per call --------------------------------------------------------------
if (tracingHere()) throw new Error('a tracer exists already: the off path cannot be measured');
const CALLS = 20_000_000;
const headers: Record<string, string> = { 'x-ugcfs-secret': 'x' };
const tracer: unknown = undefined;
// One loop per case, each its own function (a shared loop taking a callback turns
// megamorphic and times the call, not the work).
function emptyLoop(): number {
  let sink = 0;
  for (let i = 0; i < CALLS; i++) sink += i & 1;
  return sink;
}
function offPathLoop(): number {
  let sink = 0;
  for (let i = 0; i < CALLS; i++) {
    // what one request runs in trace.ts with tracing off: the chain's check, the meter's
    // lookup, and (for a request that calls a peer, as a replicated write does) the client's
    let n = i & 1;
    if (tracer !== undefined) n++;
    if (currentSpan() !== undefined) n++;
    if (startClientSpan('PUT', 'http://127.0.0.1:7001/needles/1,01', headers) !== undefined) n++;
    sink += n;
  }
  return sink;
}
/** ns per iteration, best of 5 runs (the machine is shared: the least disturbed run). */
function perCall(loop: () => number): number {
  let best = Infinity;
  for (let run = 0; run < 5; run++) {
    const t0 = process.hrtime.bigint();
    if (loop() === -1) console.log('unreachable');
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / CALLS);
  }
  return best;
}
const empty = perCall(emptyLoop);
const offPath = perCall(offPathLoop);
out({ metric: 'tracing off: added work per request (chain check, currentSpan, startClientSpan)', value: Math.round(Math.max(0, offPath - empty) * 10) / 10, unit: 'ns', emptyLoopNs: Math.round(empty * 10) / 10, calls: CALLS });

// ---- 2. off against on, end to end ------------------------------------------------------------
const work = mkdtempSync(join(tmpdir(), 'ugcfs-bench-trace-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
// the collector: takes every export and throws it away
let exports = 0;
let spanBytes = 0;
const sink = createServer((req, res) => {
  req.on('data', (c: Buffer) => (spanBytes += c.length));
  req.on('end', () => {
    exports++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
const sinkUrl = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;
const dsArgs = (dir: string) => ['dataserver', '--data', join(work, dir), '--port', '0', '--nameserver', 'http://127.0.0.1:9', '--heartbeat-ms', '60000'];
const env = { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_LOG_LEVEL: 'info' };
const off = await startUgcfs(dsArgs('off'), { env });
const on = await startUgcfs([...dsArgs('on'), '--otlp-endpoint', sinkUrl], { env });
const onSampled = await startUgcfs([...dsArgs('on-sampled'), '--otlp-endpoint', sinkUrl, '--otlp-sample-ratio', '0.01'], { env });
const servers = [off, on, onSampled];
try {
  const auth = { 'x-ugcfs-secret': SECRET };
  const fids: string[] = [];
  for (const server of servers) await fetch(`${server.url}/blocks/1`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' });
  for (let i = 0; i < files; i++) {
    const fid = encodeFid({ block: 1, key: BigInt(i + 1), cookie: newCookie() });
    const bytes = randomBytes(size);
    for (const server of servers) {
      const r = await fetch(`${server.url}/needles/${fid}`, { method: 'PUT', headers: { ...auth, 'x-ugcfs-mime': 'image/jpeg' }, body: bytes });
      if (r.status !== 201) throw new Error(`PUT failed: ${r.status} ${await r.text()}`);
    }
    fids.push(fid);
  }
  const wrk = (await runCommand('which', ['wrk'])).stdout.trim();
  if (!wrk) {
    out({ bench: 'trace-overhead', skipped: 'the end-to-end part needs wrk (apt-get install wrk)' });
  } else {
    const load = { wrk, threads: 2, connections: 32, durationS: duration, paths: fids.map((f) => `/needles/${f}`), headers: auth };
    const measured = async (pid: number, url: string, what: string): Promise<WrkResult & { cpuUs: number }> => {
      const c0 = processCpuMs(pid);
      const r = checkWrk(await runWrk({ ...load, url }), what);
      return { ...r, cpuUs: ((processCpuMs(pid) - c0) * 1000) / Math.max(1, r.requests) };
    };
    for (const server of servers) await runWrk({ ...load, durationS: 1, url: server.url });
    const a: (WrkResult & { cpuUs: number })[] = [];
    const b: (WrkResult & { cpuUs: number })[] = [];
    const c: (WrkResult & { cpuUs: number })[] = [];
    for (let r = 0; r < rounds; r++) {
      a.push(await measured(off.pid, off.url, 'tracing off'));
      b.push(await measured(on.pid, on.url, 'tracing on'));
      c.push(await measured(onSampled.pid, onSampled.url, 'tracing on, 1 % sampled'));
    }
    const kb = size / 1024;
    const rps = (xs: WrkResult[]) => Math.round(median(xs.map((x) => x.rps)));
    const cpu = (xs: { cpuUs: number }[]) => Math.round(median(xs.map((x) => x.cpuUs)) * 10) / 10;
    out({ metric: `data server ${kb} KB reads, tracing off`, value: rps(a), unit: 'req/s', runs: a.map((x) => Math.round(x.rps)), cpuUsPerReq: cpu(a), command: a[0]!.command });
    out({ metric: `data server ${kb} KB reads, tracing on (every read a recorded span)`, value: rps(b), unit: 'req/s', runs: b.map((x) => Math.round(x.rps)), cpuUsPerReq: cpu(b), exports, spanKBytes: Math.round(spanBytes / 1024) });
    out({ metric: `data server ${kb} KB reads, tracing on, --otlp-sample-ratio 0.01`, value: rps(c), unit: 'req/s', runs: c.map((x) => Math.round(x.rps)), cpuUsPerReq: cpu(c) });
    out({ metric: `data server ${kb} KB reads, tracing on vs off`, value: Math.round(medianRatio(b.map((x) => x.rps), a.map((x) => x.rps)) * 100) / 100, unit: 'x', rounds });
    out({ metric: `data server ${kb} KB reads, tracing on at 1 % vs off`, value: Math.round(medianRatio(c.map((x) => x.rps), a.map((x) => x.rps)) * 100) / 100, unit: 'x', rounds });
  }
} finally {
  for (const server of servers) await server.stop();
  sink.close();
}
