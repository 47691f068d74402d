// Observability across every server of a running system (the all-in-one runs each role
// through its own start function, logger and metrics registry): JSON logs with request ids,
// no secret or token ever printed, ugcfs_ metrics with live values on /metrics, /healthz,
// and a graceful SIGTERM with exit code 0.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetrics, scrapeMetrics, type Sample } from '../helpers/metrics-scrape.ts';
import { CORPUS, run, waitFor } from '../helpers/proc.ts';
import { startAllInOne, type AllInOne } from './all-in-one.ts';

// 32 characters each: every secret and token must be at least that long.
const rand = () => randomBytes(24).toString('base64url');
const SECRET = `cs-${rand()}`;
const UPLOAD_TOKENS = [`up-${rand()}`, `up-${rand()}`];
const ADMIN = `adm-${rand()}`;
const SECRETS = [SECRET, ...UPLOAD_TOKENS, ADMIN];

/** One metric's samples in a scraped text: the assertions here need them raw (how many, which labels). */
function samples(text: string, name: string): Sample[] {
  return parseMetrics(text).samples.filter((x) => x.name === name);
}
const total = (text: string, name: string) => samples(text, name).reduce((s, x) => s + x.value, 0);

describe('observability of every server', () => {
  let s: AllInOne;
  let fid = '';
  const metrics: Record<string, string> = {};

  beforeAll(async () => {
    s = await startAllInOne({
      env: { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_UPLOAD_TOKENS: UPLOAD_TOKENS.join(','), UGCFS_ADMIN_TOKEN: ADMIN, UGCFS_LOG_LEVEL: 'debug' },
    });
    await waitFor('3 live data servers', async () => {
      const st = (await (await fetch(`${s.nameserver}/status`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()) as { dataservers: Array<{ alive: boolean }> };
      return st.dataservers.filter((d) => d.alive).length === 3;
    });
    // Traffic that carries every secret, through every server.
    const photo = readFileSync(join(CORPUS, 'photos', 'Garden.jpg'));
    for (const token of UPLOAD_TOKENS) {
      const form = new FormData();
      form.append('file', new Blob([photo], { type: 'image/jpeg' }), 'garden.jpg');
      const up = await fetch(`${s.origin}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${token}`, 'x-request-id': `obs-upload-${token === UPLOAD_TOKENS[0] ? 1 : 2}` } });
      expect(up.status).toBe(201);
      fid ||= ((await up.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
    }
    expect((await fetch(`${s.origin}/${fid}.jpg?w=120&h=120&fit=cover`)).status).toBe(200);
    expect((await fetch(`${s.origin}/${fid}.jpg?w=120&h=120&fit=cover`)).status).toBe(200);
    expect((await fetch(`${s.origin}/${fid}.jpg`)).status).toBe(200);
    expect((await fetch(`${s.nameserver}/status`, { headers: { 'x-ugcfs-secret': SECRET } })).status).toBe(200);
    expect((await fetch(`${s.nameserver}/`, { headers: { authorization: 'Basic ' + Buffer.from(`ops:${ADMIN}`).toString('base64') } })).status).toBe(200);
    for (const ds of s.dataservers) expect((await fetch(`${ds}/blocks`, { headers: { authorization: `Bearer ${SECRET}` } })).status).toBe(200);
    // Refused requests, one per server, each with a request id of ours (logged at debug).
    expect((await fetch(`${s.nameserver}/status`, { headers: { 'x-request-id': 'obs-ns' } })).status).toBe(401);
    for (const [i, ds] of s.dataservers.entries()) expect((await fetch(`${ds}/blocks`, { headers: { 'x-request-id': `obs-ds-${i + 1}` } })).status).toBe(401);
    expect((await fetch(`${s.origin}/upload`, { method: 'POST', headers: { 'x-request-id': 'obs-origin', authorization: `Bearer not-${UPLOAD_TOKENS[0]!.slice(3)}x` }, body: photo })).status).toBe(401);
    // A secret sent where it does not belong (a wrong route, a query string) must not echo either.
    expect((await fetch(`${s.origin}/nope/${SECRET}?token=${ADMIN}`, { headers: { 'x-ugcfs-secret': SECRET, cookie: `s=${ADMIN}` } })).status).toBeGreaterThanOrEqual(400);
    for (const [role, url] of [['origin', s.origin], ['nameserver', s.nameserver], ...s.dataservers.map((u, i) => [`ds-${i + 1}`, u])] as Array<[string, string]>) {
      const res = await fetch(`${url}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
      metrics[role] = await res.text();
    }
    // Storage gauges are refreshed by the data servers' heartbeat loop, not by each write.
    const dsKeys = s.dataservers.map((_, i) => `ds-${i + 1}`);
    await waitFor('the data servers to refresh their storage gauges', async () => {
      for (const [i, url] of s.dataservers.entries()) metrics[dsKeys[i]!] = await (await fetch(`${url}/metrics`)).text();
      return dsKeys.reduce((sum, k) => sum + (samples(metrics[k]!, 'ugcfs_bytes_stored')[0]?.value ?? 0), 0) > 0;
    });
    // Stored bytes reach the name server with the next heartbeats, not with the write.
    metrics.nameserver = await waitFor('the name server to count the stored bytes', async () => {
      const text = await (await fetch(`${s.nameserver}/metrics`)).text();
      return (samples(text, 'ugcfs_cluster_used_bytes')[0]?.value ?? 0) > 0 ? text : undefined;
    });
  }, 120_000);

  afterAll(async () => s?.stop());

  it('answers /healthz on every server with its role', async () => {
    for (const [role, url] of [['origin', s.origin], ['nameserver', s.nameserver], ...s.dataservers.map((u) => ['dataserver', u])] as Array<[string, string]>) {
      const res = await fetch(`${url}/healthz`);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ ok: true, role });
    }
  });

  it('counts each request once under its route, method and status', async () => {
    const ds = s.dataservers[0]!;
    const before = await scrapeMetrics(ds);
    for (let i = 0; i < 3; i++) expect((await fetch(`${ds}/healthz`)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await fetch(`${ds}/blocks`, { headers: { 'x-request-id': 'obs-count' } })).status).toBe(401);
    const after = await scrapeMetrics(ds);
    const grew = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);
    expect(grew('ugcfs_http_requests_total', { route: '/healthz', method: 'GET', status: '200' })).toBe(3);
    expect(grew('ugcfs_http_requests_total', { route: '/blocks', method: 'GET', status: '401' })).toBe(2);
    expect(grew('ugcfs_http_request_duration_seconds_count', { route: '/healthz', method: 'GET' })).toBe(3);
    expect(grew('ugcfs_http_request_duration_seconds_count', { route: '/blocks', method: 'GET' })).toBe(2);
  });

  it('exposes the ugcfs_ metrics each role is expected to have, with live values', () => {
    for (const text of Object.values(metrics)) {
      expect(total(text, 'ugcfs_http_requests_total')).toBeGreaterThan(0);
      expect(samples(text, 'ugcfs_http_request_duration_seconds_count').length).toBeGreaterThan(0);
    }
    const o = metrics.origin!;
    expect(samples(o, 'ugcfs_uploads_total').length).toBeGreaterThan(0);
    expect(total(o, 'ugcfs_resizes_total')).toBeGreaterThanOrEqual(1);
    expect(total(o, 'ugcfs_resize_duration_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(samples(o, 'ugcfs_cache_lookups_total').some((x) => x.labels.result === 'hit' && x.value > 0)).toBe(true);
    expect(total(o, 'ugcfs_bytes_served_total')).toBeGreaterThan(0);
    expect(samples(o, 'ugcfs_resize_queue')).toHaveLength(1);

    const ns = metrics.nameserver!;
    expect(samples(ns, 'ugcfs_dataservers_alive')[0]?.value).toBe(3);
    expect(samples(ns, 'ugcfs_under_replicated_blocks')).toHaveLength(1);
    expect(total(ns, 'ugcfs_assigns_total')).toBeGreaterThanOrEqual(2);
    expect(samples(ns, 'ugcfs_cluster_used_bytes')[0]?.value).toBeGreaterThan(0);
    expect(ns).toContain('# TYPE ugcfs_repairs_total counter');

    const ds = ['ds-1', 'ds-2', 'ds-3'].map((k) => metrics[k]!);
    for (const d of ds) {
      expect(samples(d, 'ugcfs_free_bytes')[0]?.value).toBeGreaterThan(0);
      expect(samples(d, 'ugcfs_bytes_stored')).toHaveLength(1);
      expect(d).toContain('# TYPE ugcfs_replication_duration_seconds histogram');
    }
    // Two replicated uploads: the bytes sit on two servers each, and some primary forwarded.
    expect(ds.reduce((sum, d) => sum + samples(d, 'ugcfs_bytes_stored')[0]!.value, 0)).toBeGreaterThan(0);
    expect(ds.reduce((sum, d) => sum + total(d, 'ugcfs_needle_writes_total'), 0)).toBeGreaterThanOrEqual(4);
    expect(ds.reduce((sum, d) => sum + total(d, 'ugcfs_replication_duration_seconds_count'), 0)).toBeGreaterThanOrEqual(2);
  });

  it('refuses a second ugcfs server on the same data directory with one line and exit code 2', async () => {
    const r = await run(['server', '--data', join(s.dir, 'data'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0'], { env: { UGCFS_CLUSTER_SECRET: SECRET } });
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').filter((l) => l.startsWith('ugcfs '))).toEqual([`ugcfs server: option --data: ${join(s.dir, 'data')} is in use by another ugcfs process`]);
    expect((await fetch(`${s.origin}/healthz`)).status).toBe(200);
  });

  it('logs JSON lines with the request id on every server, and stops gracefully on SIGTERM with exit code 0', async () => {
    const code = await s.proc.kill('SIGTERM');
    expect(code).toBe(0);
    const json = s.proc.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json.length).toBeGreaterThan(10);
    for (const j of json) {
      expect(typeof j.level).toBe('number');
      expect(typeof j.time).toBe('number');
      expect(typeof j.name).toBe('string');
      expect(typeof j.msg).toBe('string');
    }
    const withId = (id: string, msg?: string) => json.find((j) => j.reqId === id && (msg === undefined || j.msg === msg));
    expect(withId('obs-upload-1', 'uploaded')).toMatchObject({ name: 'origin' });
    expect(withId('obs-upload-2', 'uploaded')).toMatchObject({ name: 'origin' });
    expect(withId('obs-ns')).toMatchObject({ name: 'nameserver' });
    for (let i = 1; i <= 3; i++) expect(withId(`obs-ds-${i}`)).toMatchObject({ name: `dataserver:ds-${i}` });
    expect(withId('obs-origin')).toMatchObject({ name: 'origin' });
    expect(json.some((j) => j.msg === 'shutting down')).toBe(true);
  });

  it('never prints a secret or token', () => {
    const all = s.proc.lines.join('\n');
    expect(all.length).toBeGreaterThan(1000);
    for (const secret of SECRETS) expect(all).not.toContain(secret);
    // nor those of <data>/secrets.env, made on the first start though the environment gave its own
    expect(Object.keys(s.secrets).length).toBeGreaterThanOrEqual(3);
    for (const value of Object.values(s.secrets)) expect(all).not.toContain(value);
  });
});
