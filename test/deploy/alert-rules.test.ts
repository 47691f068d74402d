// The Prometheus rules (deploy/prometheus/ugcfs-rules.yml) and the Grafana dashboard
// (deploy/grafana/ugcfs-dashboard.json) against what the code exports.
//   - promtool (Debian package prometheus) checks the rules and the scrape config, runs the
//     rules' unit tests (input series -> expected alerts, ugcfs-rules.test.yml), shows they
//     catch a rule that forgets its role, and parses every dashboard expression. Skipped,
//     saying so, without promtool.
//   - Every name an expression reads is checked against the /metrics of a running cluster's
//     name server, data server and origin, so rules cannot drift from src/base/metrics.ts.
//     Every server declares every ugcfs_ family (one vocabulary) and tells its samples apart
//     by the `role` label (an origin exports ugcfs_free_bytes 0), so each selector must name
//     the role it reads, that role's scrape must declare the family, and every other label it
//     matches on must be one the family has (and an exact value one the scrape shows, when
//     it shows that label at all).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/base/metrics.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { parseMetrics, type Sample } from '../helpers/metrics-scrape.ts';
import { CORPUS, ROOT } from '../helpers/proc.ts';

const PROM_DIR = join(ROOT, 'deploy', 'prometheus');
const RULES = join(PROM_DIR, 'ugcfs-rules.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'ugcfs-dashboard.json');
const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
const NO_PROMTOOL = PROMTOOL ? '' : ' (SKIPPED: promtool is not installed; apt-get install prometheus)';
if (!PROMTOOL) console.warn(`alert rule checks${NO_PROMTOOL}`);

const ROLES = ['nameserver', 'dataserver', 'origin'] as const;
type Role = (typeof ROLES)[number];

interface RuleFile {
  groups: Array<{ name: string; rules: Array<{ record?: string; alert?: string; expr: string }> }>;
}
const rules = parse(readFileSync(RULES, 'utf8')) as RuleFile;
const ruleList = rules.groups.flatMap((g) => g.rules);
const recorded = new Set(ruleList.flatMap((r) => (r.record ? [r.record] : [])));
const jobs = new Set((parse(readFileSync(join(PROM_DIR, 'prometheus.yml'), 'utf8')) as { scrape_configs: Array<{ job_name: string }> }).scrape_configs.map((s) => s.job_name));

/** Every `expr` in the dashboard, wherever a panel or row keeps it. */
function dashboardExprs(): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        if (k === 'expr' && typeof x === 'string') out.push(x);
        else walk(x);
      }
    }
  };
  walk(JSON.parse(readFileSync(DASHBOARD, 'utf8')));
  return out;
}

function promtool(args: string[], cwd = PROM_DIR): { status: number | null; out: string } {
  const r = spawnSync(PROMTOOL!, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

describe.skipIf(!PROMTOOL)(`promtool on the rules and the dashboard${NO_PROMTOOL}`, () => {
  it('checks the rules and the scrape config that loads them', () => {
    const rulesCheck = promtool(['check', 'rules', 'ugcfs-rules.yml']);
    expect(rulesCheck.out).toContain(`SUCCESS: ${ruleList.length} rules found`);
    expect(rulesCheck.status).toBe(0);
    const config = promtool(['check', 'config', 'prometheus.yml']);
    expect(config.status, config.out).toBe(0);
  });

  it('passes the unit tests: each alert fires on its input series, and only there', () => {
    const r = promtool(['test', 'rules', 'ugcfs-rules.test.yml']);
    expect(r.status, r.out).toBe(0);
    expect(r.out).toContain('SUCCESS');
    // every alert has a case that expects it to fire
    const tests = readFileSync(join(PROM_DIR, 'ugcfs-rules.test.yml'), 'utf8');
    for (const a of ruleList.flatMap((x) => (x.alert ? [x.alert] : []))) expect(tests, a).toMatch(new RegExp(`alertname: ${a}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });

  it('fails the unit tests when a disk alert forgets its role (origins export ugcfs_free_bytes 0)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ugcfs-rules-'));
    try {
      const text = readFileSync(RULES, 'utf8').replaceAll('ugcfs_free_bytes{role="dataserver"}', 'ugcfs_free_bytes');
      writeFileSync(join(dir, 'ugcfs-rules.yml'), text);
      copyFileSync(join(PROM_DIR, 'ugcfs-rules.test.yml'), join(dir, 'ugcfs-rules.test.yml'));
      const r = promtool(['test', 'rules', 'ugcfs-rules.test.yml'], dir);
      expect(r.status).not.toBe(0);
      expect(r.out).toContain('instance="o1:8080"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('parses every dashboard expression', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ugcfs-dash-'));
    try {
      const exprs = dashboardExprs().map((e) => e.replaceAll('$__rate_interval', '5m'));
      writeFileSync(join(dir, 'dash.yml'), JSON.stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:expr${i}`, expr })) }] }));
      const r = promtool(['check', 'rules', 'dash.yml'], dir);
      expect(r.status, r.out).toBe(0);
      expect(r.out).toContain(`SUCCESS: ${exprs.length} rules found`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** What one selector in an expression asks for: a metric name and its label matchers. */
interface Selector {
  name: string;
  matchers: Array<{ label: string; op: string; value: string }>;
}

function selectors(expr: string): Selector[] {
  const out: Selector[] = [];
  for (const m of expr.matchAll(/\b([a-zA-Z_][\w:]*)\s*\{([^}]*)\}|\b(ugcfs[_:][\w:]*)/g)) {
    const name = m[1] ?? m[3]!;
    const matchers = [...(m[2] ?? '').matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"/g)].map((x) => ({ label: x[1]!, op: x[2]!, value: x[3]! }));
    out.push({ name, matchers });
  }
  return out;
}

const SERIES_SUFFIXES = ['_bucket', '_sum', '_count'];

describe('the rules and the dashboard read only what the servers export', () => {
  let c: Cluster | undefined;
  const scraped = {} as Record<Role, { samples: Sample[]; families: Set<string> }>;
  // the label names each family is declared with, from the code itself
  const declaredLabels = new Map<string, string[]>();
  for (const m of Object.values(createMetrics('probe').metrics)) {
    const metric = m as unknown as { name: string; labelNames?: string[] };
    declaredLabels.set(metric.name, metric.labelNames ?? []);
  }

  beforeAll(async () => {
    c = await startCluster({ dataservers: 2, origin: true });
    const origin = c.origin!.url;
    // Traffic through every role: an upload, a variant made once and then hit.
    const photo = readFileSync(join(CORPUS, 'photos', 'Garden.jpg'));
    const up = await fetch(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${c.uploadToken}` }, body: photo });
    expect(up.status).toBe(201);
    const fid = ((await up.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
    for (let i = 0; i < 2; i++) expect((await fetch(`${origin}/${fid}.jpg?w=96`)).status).toBe(200);
    const urls: Record<Role, string> = { nameserver: c.nameserver.url, dataserver: c.dataservers[0]!.url, origin };
    for (const role of ROLES) {
      const res = await fetch(`${urls[role]}/metrics`);
      expect(res.status).toBe(200);
      scraped[role] = parseMetrics(await res.text());
    }
  }, 120_000);

  afterAll(async () => c?.stop());

  /** What is wrong with the names `expr` reads ([] when nothing is). */
  function problems(expr: string): string[] {
    const found: string[] = [];
    for (const s of selectors(expr)) {
      if (recorded.has(s.name)) continue;
      if (s.name === 'up') {
        // Prometheus' own series: its job names must be the scrape config's
        const job = s.matchers.find((m) => m.label === 'job');
        const names = job ? (job.op === '=~' ? job.value.split('|') : [job.value]) : [];
        if (names.length === 0 || names.some((n) => !jobs.has(n))) found.push(`up must name jobs of prometheus.yml: ${expr}`);
        continue;
      }
      if (s.name.includes(':')) {
        found.push(`${s.name} is recorded by no rule`);
        continue;
      }
      if (!s.name.startsWith('ugcfs_')) {
        found.push(`${s.name} is not a ugcfs metric`);
        continue;
      }
      const role = s.matchers.find((m) => m.label === 'role' && (m.op === '=' || m.op === '=~'));
      if (!role) {
        found.push(`${s.name} names no role (every server declares every family)`);
        continue;
      }
      const family = SERIES_SUFFIXES.reduce((n, suf) => (n.endsWith(suf) && scraped.origin.families.has(n.slice(0, -suf.length)) ? n.slice(0, -suf.length) : n), s.name);
      for (const r of role.op === '=~' ? role.value.split('|') : [role.value]) {
        if (!(ROLES as readonly string[]).includes(r)) {
          found.push(`${s.name}: no role ${r}`);
          continue;
        }
        const scrape = scraped[r as Role];
        if (!scrape.families.has(family)) {
          found.push(`${s.name}: the ${r}'s /metrics declares no ${family}`);
          continue;
        }
        const samples = scrape.samples.filter((x) => x.name === s.name);
        const known = new Set([...(declaredLabels.get(family) ?? []), ...samples.flatMap((x) => Object.keys(x.labels)), 'role', ...(s.name.endsWith('_bucket') ? ['le'] : [])]);
        for (const m of s.matchers) {
          if (!known.has(m.label)) found.push(`${s.name} has no label ${m.label}`);
          const shown = new Set(samples.flatMap((x) => (m.label in x.labels ? [x.labels[m.label]!] : [])));
          if (m.op === '=' && m.label !== 'role' && shown.size > 0 && !shown.has(m.value)) found.push(`${s.name}{${m.label}="${m.value}"}: the ${r} shows only ${[...shown].join(', ')}`);
        }
      }
    }
    return found;
  }

  it('every rule expression names metrics, roles and labels the servers export', () => {
    const exprs = ruleList.map((r) => r.expr);
    const names = new Set(exprs.flatMap((e) => selectors(e).map((s) => s.name)));
    // the signals the rules are for, each read by some rule
    for (const n of ['ugcfs_dataservers_alive', 'ugcfs_under_replicated_blocks', 'ugcfs_free_bytes', 'ugcfs_nameserver_epoch', 'ugcfs_nameserver_elections_total', 'ugcfs_resize_queue', 'ugcfs_http_requests_total', 'ugcfs_cache_lookups_total']) {
      expect(names, n).toContain(n);
    }
    expect(exprs.flatMap(problems)).toEqual([]);
  });

  it('the dashboard parses, and every expression names metrics, roles and labels the servers export', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThan(15);
    expect(exprs.flatMap(problems)).toEqual([]);
    // a misspelt name or a missing role is caught, not passed
    expect(problems('rate(ugcfs_cache_lookup_total{role="origin"}[5m])')).not.toEqual([]);
    expect(problems('ugcfs_free_bytes < 1')).not.toEqual([]);
    expect(problems('ugcfs_cache_lookups_total{role="origin",tier="memroy"}')).not.toEqual([]);
  });
});
