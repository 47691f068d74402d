// Side-by-side HTTP read measurement: every target is measured once per round, rounds
// repeated, so each ratio compares figures taken minutes apart at most, under the same
// background load. Figures are medians over rounds; ratios are medians of per-round ratios.
import { runWrk, checkWrk, type WrkResult } from './wrk.ts';
import { median, medianRatio, spread } from './stats.ts';
import type { BenchContext } from './context.ts';

/** more 1 s warm-ups for a target that answered nothing in the first */
const WARM_UP_RETRIES = 2;

export interface Target {
  id: string;
  label: string;
  url: string;
  paths: readonly string[];
  headers?: Record<string, string>;
}

export interface TargetFigures {
  id: string;
  label: string;
  runs: WrkResult[];
  rps: number;
  mbps: number;
  p50: number;
  p99: number;
  spread: number;
  error?: string;
}

export async function compareReads(ctx: BenchContext, targets: readonly Target[], opts: { connections?: number; threads?: number; what: string }): Promise<Map<string, TargetFigures>> {
  const wrk = ctx.tools.wrk!;
  const runs = new Map<string, WrkResult[]>(targets.map((t) => [t.id, []]));
  const errors = new Map<string, string>();
  const go = (t: Target, durationS: number) => runWrk({ wrk, url: t.url, paths: t.paths, headers: t.headers, durationS, connections: opts.connections, threads: opts.threads });
  for (const t of targets) {
    // Warm-up: JIT, page cache, keep-alive pools, ugcfs location caches. A fresh server that
    // answered nothing within the second (first TLS handshakes on a busy machine) gets two more.
    try {
      let warm = await go(t, 1);
      for (let more = 0; more < WARM_UP_RETRIES && warm.requests === 0; more++) warm = await go(t, 1);
      checkWrk(warm, `${opts.what} ${t.label} warm-up`);
    } catch (err) {
      errors.set(t.id, (err as Error).message);
    }
  }
  for (let r = 0; r < ctx.runs; r++) {
    for (const t of targets) {
      if (errors.has(t.id)) continue;
      try {
        const res = checkWrk(await go(t, ctx.durationS), `${opts.what} ${t.label}`);
        runs.get(t.id)!.push(res);
        ctx.log(`  ${opts.what} ${t.label} round ${r + 1}: ${Math.round(res.rps)} req/s p99 ${Math.round(res.p99)} µs`);
      } catch (err) {
        errors.set(t.id, (err as Error).message);
        ctx.log(`  ${opts.what} ${t.label}: ${(err as Error).message}`);
      }
    }
  }
  const out = new Map<string, TargetFigures>();
  const cmd = [...runs.values()].flat()[0]?.command;
  if (cmd) ctx.log(`  (${cmd})`);
  for (const t of targets) {
    const rs = runs.get(t.id)!;
    out.set(t.id, {
      id: t.id,
      label: t.label,
      runs: rs,
      rps: median(rs.map((x) => x.rps)),
      mbps: median(rs.map((x) => x.bytesPerS / 2 ** 20)),
      p50: median(rs.map((x) => x.p50)),
      p99: median(rs.map((x) => x.p99)),
      spread: spread(rs.map((x) => x.rps)),
      error: errors.get(t.id),
    });
  }
  return out;
}

/** Median of per-round rps ratios a/b; NaN when either was not measured. */
export function rpsRatio(figs: Map<string, TargetFigures>, a: string, b: string): number {
  const x = figs.get(a);
  const y = figs.get(b);
  if (!x || !y || x.runs.length === 0 || y.runs.length === 0) return Number.NaN;
  return medianRatio(x.runs.map((r) => r.rps), y.runs.map((r) => r.rps));
}
