// Markdown rendering for docs/BENCHMARKS.md.

export type Cell = string | number | undefined | null;

export function table(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const fmt = (c: Cell) => (c === undefined || c === null || (typeof c === 'number' && !Number.isFinite(c)) ? '—' : String(c)).replace(/\|/g, '\\|');
  const lines = [`| ${header.map(fmt).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${header.map((_, i) => fmt(r[i])).join(' | ')} |`);
  return lines.join('\n');
}

/** Requests/s and similar: thousands separated, no false precision. */
export function num(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function ratio(r: number | undefined): string {
  return r === undefined || !Number.isFinite(r) ? '—' : `${r.toFixed(2)}x`;
}

/** Microseconds to a readable latency. */
export function micros(us: number | undefined): string {
  if (us === undefined || !Number.isFinite(us)) return '—';
  return us >= 10_000 ? `${(us / 1000).toFixed(1)} ms` : us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${Math.round(us)} µs`;
}

export function bytes(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '—';
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A file count as the sections name sizes: 10k, 100k, 1M. */
export function filesLabel(n: number): string {
  return n >= 1e6 ? `${n / 1e6}M` : `${n / 1e3}k`;
}

export function goal(met: boolean | undefined): string {
  return met === undefined ? 'not measured' : met ? 'met' : 'NOT met';
}
