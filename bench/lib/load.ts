// A closed-loop load generator in Node for work wrk cannot express well: writes that go
// through the ugcfs cluster client (assign, then a replicated PUT), uploads with bodies,
// and resize misses where every request must name a variant never asked for before.
// Each of `concurrency` workers issues one request at a time for `durationS` seconds.
import { percentile } from './stats.ts';

export interface LoadResult {
  ops: number;
  opsPerS: number;
  bytesPerS: number;
  /** latencies in microseconds */
  p50: number;
  p99: number;
  errors: number;
  firstError?: string;
}

export interface LoadOptions {
  concurrency: number;
  durationS: number;
  /** do request number i; resolves with the bytes moved */
  op: (i: number) => Promise<number>;
  /** stop early after this many operations */
  maxOps?: number;
}

export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const lat: number[] = [];
  let next = 0;
  let bytes = 0;
  let errors = 0;
  let firstError: string | undefined;
  const started = process.hrtime.bigint();
  const deadline = started + BigInt(Math.round(o.durationS * 1e9));
  const worker = async () => {
    while (process.hrtime.bigint() < deadline && (o.maxOps === undefined || next < o.maxOps)) {
      const i = next++;
      const t0 = process.hrtime.bigint();
      try {
        // not `bytes += await ...`: that reads `bytes` before the await and loses other workers' adds
        const moved = await o.op(i);
        bytes += moved;
        lat.push(Number(process.hrtime.bigint() - t0) / 1000);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  return { ops: lat.length, opsPerS: lat.length / secs, bytesPerS: bytes / secs, p50: percentile(lat, 50), p99: percentile(lat, 99), errors, firstError };
}

export function checkLoad(r: LoadResult, what: string): LoadResult {
  if (r.ops === 0 || r.errors / (r.ops + r.errors) > 0.01) {
    throw new Error(`${what}: ${r.errors} failed of ${r.ops + r.errors}${r.firstError ? ` (first: ${r.firstError})` : ''}`);
  }
  return r;
}
