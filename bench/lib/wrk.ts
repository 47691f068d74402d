// wrk drives every HTTP read figure: it is a C load generator, so on a 2-core machine it
// takes far less CPU from the server under test than a Node client would. A generated Lua
// script walks a list of paths (each thread from a different place) and prints one JSON
// summary line, so nothing depends on wrk's human-readable output.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from './spawn.ts';

/** wrk's threads and connections unless a run says otherwise */
export const WRK_THREADS = 2;
export const WRK_CONNECTIONS = 32;

/** The command line the sections publish for their wrk runs. */
export function wrkCommand(durationS: number): string {
  return `wrk -t ${WRK_THREADS} -c ${WRK_CONNECTIONS} -d ${durationS}s --timeout 10s -s ROUND_ROBIN.lua URL   (the Lua script walks the file list, one JSON summary line; bench/lib/wrk.ts)`;
}

export interface WrkOptions {
  wrk: string;
  /** base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  /** request paths, walked round-robin */
  paths: readonly string[];
  threads?: number;
  connections?: number;
  durationS?: number;
  method?: string;
  headers?: Record<string, string>;
  /** file whose bytes are sent as the body of every request */
  bodyFile?: string;
  /** also return every latency seen, as [µs, requests] pairs (bench/lib/stats.ts Histogram) */
  histogram?: boolean;
}

export interface WrkResult {
  requests: number;
  rps: number;
  /** body+header bytes per second */
  bytesPerS: number;
  /** latencies in microseconds */
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  errors: number;
  non2xx: number;
  command: string;
  /** with `histogram`: [µs, requests] for every latency seen */
  latencies?: [number, number][];
}

const lua = (s: string) => JSON.stringify(s); // paths and header values are ASCII; JSON escapes are valid Lua here

function script(o: WrkOptions): string {
  const headers = Object.entries(o.headers ?? {}).map(([k, v]) => `[${lua(k)}]=${lua(v)}`).join(', ');
  return `
local paths = { ${o.paths.map(lua).join(',\n')} }
local n = #paths
local spread = 0
function setup(thread)
  thread:set("first", spread)
  spread = spread + math.max(1, math.floor(n / 7) + 1)
end
local idx = 0
local body = nil
local method = ${lua(o.method ?? 'GET')}
local headers = { ${headers} }
function init(args)
  idx = first or 0
  ${o.bodyFile ? `local f = assert(io.open(${lua(o.bodyFile)}, "rb")); body = f:read("*a"); f:close()` : ''}
end
function request()
  idx = idx + 1
  return wrk.format(method, paths[(idx % n) + 1], headers, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%.1f,"p90":%.1f,"p99":%.1f,"mean":%.1f}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
  ${o.histogram ? `local pairs = {}
  for i = 1, #latency do
    local us, n = latency(i)
    pairs[#pairs + 1] = string.format("[%d,%d]", us, n)
  end
  io.write("WRKHIST [" .. table.concat(pairs, ",") .. "]\\n")` : ''}
end
`;
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const dir = mkdtempSync(join(tmpdir(), 'ugcfs-wrk-'));
  try {
    const file = join(dir, 'bench.lua');
    writeFileSync(file, script(o));
    const args = ['-t', String(o.threads ?? WRK_THREADS), '-c', String(o.connections ?? WRK_CONNECTIONS), '-d', `${o.durationS ?? 5}s`, '--timeout', '10s', '-s', file, o.url];
    const r = await runCommand(o.wrk, args, { timeoutMs: ((o.durationS ?? 5) + 30) * 1000 });
    const lines = r.stdout.split('\n');
    const line = lines.find((l) => l.startsWith('WRKJSON '));
    if (!line) throw new Error(`wrk produced no result (exit ${r.code}): ${r.stderr || r.stdout}`);
    const j = JSON.parse(line.slice(8)) as Record<string, number>;
    const hist = o.histogram ? lines.find((l) => l.startsWith('WRKHIST ')) : undefined;
    if (o.histogram && !hist) throw new Error(`wrk produced no histogram (exit ${r.code})`);
    const secs = j.duration_us! / 1e6;
    const errors = j.connect! + j.read! + j.write! + j.timeout!;
    return {
      requests: j.requests!,
      rps: (j.requests! - j.status!) / secs,
      bytesPerS: j.bytes! / secs,
      p50: j.p50!,
      p90: j.p90!,
      p99: j.p99!,
      mean: j.mean!,
      errors,
      non2xx: j.status!,
      ...(hist ? { latencies: JSON.parse(hist.slice(8)) as [number, number][] } : {}),
      command: `wrk -t ${o.threads ?? WRK_THREADS} -c ${o.connections ?? WRK_CONNECTIONS} -d ${o.durationS ?? 5}s --timeout 10s -s <round-robin over ${o.paths.length} path(s)${o.method && o.method !== 'GET' ? `, ${o.method}` : ''}> ${o.url}`,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A run where more than 1% of answers failed measures an error path, not the server. */
export function checkWrk(r: WrkResult, what: string): WrkResult {
  if (r.requests === 0 || (r.errors + r.non2xx) / r.requests > 0.01) {
    throw new Error(`${what}: ${r.errors} socket errors and ${r.non2xx} non-2xx answers out of ${r.requests} requests`);
  }
  return r;
}
