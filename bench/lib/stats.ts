// Summaries of repeated measurements. Benchmarks report medians, never means, so one run
// disturbed by a neighbour on the shared machine does not move the figure.

export function median(xs: readonly number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** Nearest-rank percentile, p in 0..100. */
export function percentile(xs: readonly number[], p: number): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const rank = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[rank]!;
}

/** Spread of the runs relative to their median, so readers can judge the noise. */
export function spread(xs: readonly number[]): number {
  const m = median(xs);
  if (!Number.isFinite(m) || m === 0 || xs.length < 2) return 0;
  return (Math.max(...xs) - Math.min(...xs)) / m;
}

/** Median of per-round ratios: each ratio compares two figures measured back to back. */
export function medianRatio(num: readonly number[], den: readonly number[]): number {
  const rs: number[] = [];
  for (let i = 0; i < Math.min(num.length, den.length); i++) if (den[i]! > 0) rs.push(num[i]! / den[i]!);
  return median(rs);
}

/**
 * A latency histogram: microseconds -> requests. Runs pool into one, so a percentile reads
 * every sample of every run instead of being the median of per-run percentiles, each of which
 * moves with whichever stall of the machine its run happened to catch.
 */
export class Histogram {
  private readonly counts = new Map<number, number>();
  private total = 0;

  add(pairs: Iterable<readonly [number, number]>): this {
    for (const [us, n] of pairs) {
      this.counts.set(us, (this.counts.get(us) ?? 0) + n);
      this.total += n;
    }
    return this;
  }

  /** Nearest-rank percentile, p in 0..100; NaN when empty. */
  percentile(p: number): number {
    if (this.total === 0) return Number.NaN;
    const rank = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (const us of [...this.counts.keys()].sort((a, b) => a - b)) {
      seen += this.counts.get(us)!;
      if (seen >= rank) return us;
    }
    return Number.NaN;
  }
}
