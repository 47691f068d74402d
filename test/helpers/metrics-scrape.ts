// Reads a running server's Prometheus metrics, for tests that count what a server did.
// Labels are matched by name, in any order, and a test names only the ones it cares about
// (every sample also carries the registry's default `role` label). A name no family on the
// server declares throws instead of reading as 0, so a misspelt metric cannot pass quietly;
// a declared family with no matching sample yet (a labelled counter never incremented) is 0.
//
//   const ok = await metric(ds.url, 'ugcfs_http_requests_total', { method: 'GET', status: '200' });
//   const m = await scrapeMetrics(ds.url);   // one scrape, several reads
//   m.value('ugcfs_write_batch_records_sum') + m.value('ugcfs_http_requests_total', {}, { sum: true });

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ReadOptions {
  /** add up every sample whose labels match (default: exactly one may match, else it throws) */
  sum?: boolean;
}

export interface Metrics {
  samples: Sample[];
  /** the value of `name`'s sample whose labels include `labels`; 0 when none matches */
  value(name: string, labels?: Record<string, string>, opts?: ReadOptions): number;
}

// Histograms and summaries declare one family and expose these sample series under it.
const SERIES_SUFFIXES = ['_bucket', '_sum', '_count'];

function parseValue(s: string): number {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  return Number(s);
}

function unescapeLabel(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses the Prometheus text format (0.0.4): the samples and the family names declared by TYPE lines. */
export function parseMetrics(text: string): { samples: Sample[]; families: Set<string> } {
  const samples: Sample[] = [];
  const families = new Set<string>();
  for (const line of text.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      families.add(line.split(' ')[2]!);
      continue;
    }
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = unescapeLabel(l[2]!);
    samples.push({ name: m[1]!, labels, value: parseValue(m[3]!) });
  }
  return { samples, families };
}

function declared(families: Set<string>, name: string): boolean {
  return families.has(name) || SERIES_SUFFIXES.some((s) => name.endsWith(s) && families.has(name.slice(0, -s.length)));
}

/** Fetches `url`/metrics once; read as many values from the result as needed. */
export async function scrapeMetrics(url: string): Promise<Metrics> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}/metrics: ${res.status} ${text.slice(0, 200)}`);
  const { samples, families } = parseMetrics(text);
  return {
    samples,
    value(name, labels = {}, opts = {}) {
      if (!declared(families, name)) throw new Error(`${url}/metrics declares no metric ${name}`);
      const wanted = Object.entries(labels);
      const hits = samples.filter((s) => s.name === name && wanted.every(([k, v]) => s.labels[k] === v));
      if (hits.length > 1 && !opts.sum) {
        throw new Error(`${hits.length} samples of ${name} match ${JSON.stringify(labels)}; name more labels or pass { sum: true }`);
      }
      return hits.reduce((total, s) => total + s.value, 0);
    },
  };
}

/** One value from one scrape: see Metrics.value. */
export async function metric(url: string, name: string, labels: Record<string, string> = {}, opts: ReadOptions = {}): Promise<number> {
  return (await scrapeMetrics(url)).value(name, labels, opts);
}
