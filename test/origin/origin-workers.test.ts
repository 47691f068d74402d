// `ugcfs origin --workers 2`: two origin processes behind one port (node:cluster). Each
// keep-alive connection stays with the worker that accepted it, so a one-connection undici
// Client per worker lets the test talk to a chosen worker (/healthz names it). Shown here:
// both workers serve; /metrics answers for the whole origin whichever worker is asked; a
// delete answered by one worker is gone from the other before the answer (the delete feed
// is slowed to a minute, so only the pool's own purge can explain it); a SIGKILLed worker is
// replaced while the other keeps serving; the pool stops cleanly on SIGTERM, dies with its
// primary on SIGKILL, and a start that fails in the workers fails the command.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseMetrics } from '../helpers/metrics-scrape.ts';
import { run, type Proc } from '../helpers/proc.ts';
import { corpus, scratchDir, startEnv, startOrigin, stopAll, upload, type Env } from './origin-env.ts';

const ADMIN = 'workers-admin-' + randomBytes(16).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: Env;
beforeAll(async () => {
  env = await startEnv({ dataservers: 2 });
}, 90_000);
afterAll(() => stopAll(env));

async function get(c: Client, path: string, headers: Record<string, string> = {}, method: 'GET' | 'DELETE' = 'GET') {
  const r = await c.request({ path, method, headers });
  const body = Buffer.from(await r.body.arrayBuffer());
  return { status: r.statusCode, headers: r.headers, body };
}

/** One connection pinned to each worker, found by opening connections until each index answered. */
async function clientsPerWorker(url: string, workers: number): Promise<Client[]> {
  const byWorker: Client[] = [];
  const spare: Client[] = [];
  for (let i = 0; i < 40 && byWorker.filter(Boolean).length < workers; i++) {
    const c = new Client(url); // one connection
    const h = JSON.parse((await get(c, '/healthz')).body.toString('utf8')) as { worker: number; workers: number };
    expect(h.workers).toBe(workers);
    if (byWorker[h.worker] === undefined) byWorker[h.worker] = c;
    else spare.push(c);
  }
  await Promise.all(spare.map((c) => c.close()));
  expect(byWorker.filter(Boolean)).toHaveLength(workers);
  return byWorker;
}

function workerPids(primary: number): number[] {
  const children = readFileSync(`/proc/${primary}/task/${primary}/children`, 'utf8').trim();
  return children === '' ? [] : children.split(/\s+/).map(Number);
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/State:\s+Z/.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

describe('origin --workers 2', () => {
  let o: Proc;
  let cacheDir: string;
  let clients: Client[] = [];
  beforeAll(async () => {
    cacheDir = scratchDir(env);
    o = await startOrigin(env, ['--workers', '2', '--cache-dir', cacheDir, '--delete-feed-interval-ms', '60000'], { UGCFS_ADMIN_TOKEN: ADMIN });
    clients = await clientsPerWorker(o.url, 2);
  }, 60_000);
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  it('both workers serve the same files, each from its own caches', async () => {
    const f = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    for (const c of clients) {
      const first = await get(c, `/${f.fid}?w=64`);
      expect(first.status).toBe(200);
      expect(first.headers['x-cache']).not.toBe('HIT');
      expect((await get(c, `/${f.fid}?w=64`)).headers['x-cache']).toBe('HIT');
    }
    // worker 0 keeps the cache directory itself, worker 1 a subdirectory
    expect(readdirSync(cacheDir).filter((n) => /^[0-9a-f]{16}-/.test(n)).length).toBeGreaterThan(0);
    expect(readdirSync(join(cacheDir, 'worker-1')).length).toBeGreaterThan(0);
  });

  it('/metrics counts every worker\'s requests, whichever worker answers the scrape', async () => {
    const f = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    const path = `/${f.fid}?w=40`;
    for (let i = 0; i < 3; i++) await get(clients[0]!, path);
    for (let i = 0; i < 5; i++) await get(clients[1]!, path);
    const count = async (c: Client) =>
      parseMetrics((await get(c, '/metrics')).body.toString('utf8'))
        .samples.filter((s) => s.name === 'ugcfs_http_requests_total' && s.labels.route === '/*' && s.labels.method === 'GET')
        .reduce((n, s) => n + s.value, 0);
    const seen0 = await count(clients[0]!);
    const seen1 = await count(clients[1]!);
    // Both answers include both workers' 8 reads (and every earlier one), so they agree.
    expect(seen0).toBe(seen1);
    expect(seen0).toBeGreaterThanOrEqual(8);
    const health = await Promise.all(clients.map(async (c) => JSON.parse((await get(c, '/healthz')).body.toString('utf8')).memoryCacheEntries as number));
    expect(health.every((n) => n > 0)).toBe(true);
  });

  it('a delete answered by one worker is gone from the other before the answer', async () => {
    const f = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    for (const c of clients) {
      await get(c, `/${f.fid}`);
      expect((await get(c, `/${f.fid}`)).headers['x-cache']).toBe('HIT');
    }
    const del = await get(clients[0]!, `/${f.fid}`, { authorization: `Bearer ${ADMIN}` }, 'DELETE');
    expect(del.status).toBe(204);
    const after = await get(clients[1]!, `/${f.fid}`);
    expect(after.status).toBe(404);
    expect(JSON.parse(after.body.toString('utf8')).error.code).toBe('UGCFS_ERR_NOT_FOUND');
  });

  it('a SIGKILLed worker is replaced; the other serves meanwhile', async () => {
    const f = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    const before = workerPids(o.child.pid!);
    expect(before).toHaveLength(2);
    process.kill(before[0]!, 'SIGKILL');
    // Once the primary has seen the death, new connections go to the live worker. (A
    // connection node:cluster hands to a worker in the instant it dies is lost with it: the
    // client's timeout and retry cover that, as for any crashed server.)
    const died = () => o.lines.some((l) => l.includes('origin worker died'));
    for (let i = 0; i < 100 && !died(); i++) await sleep(50);
    expect(died()).toBe(true);
    for (let i = 0; i < 4; i++) {
      const c = new Client(o.url);
      expect((await get(c, `/${f.fid}`)).status).toBe(200);
      await c.close();
    }
    const replaced = () => o.lines.some((l) => l.includes('origin worker replaced and serving'));
    for (let i = 0; i < 150 && !replaced(); i++) await sleep(100);
    expect(replaced()).toBe(true);
    const now = workerPids(o.child.pid!);
    expect(now).toHaveLength(2);
    expect(now).not.toContain(before[0]);
    await Promise.all(clients.map((c) => c.destroy()));
    clients = await clientsPerWorker(o.url, 2);
  }, 30_000);

  it('SIGTERM stops every worker gracefully and exits 0', async () => {
    const pids = workerPids(o.child.pid!);
    await Promise.all(clients.map((c) => c.close()));
    clients = [];
    expect(await o.kill('SIGTERM')).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
  }, 30_000);

  it('started again as one process, keeps worker 0\'s disk cache and drops the others\'', async () => {
    const kept = readdirSync(cacheDir).filter((n) => /^[0-9a-f]{16}-/.test(n));
    expect(existsSync(join(cacheDir, 'worker-1'))).toBe(true);
    const one = await startOrigin(env, ['--cache-dir', cacheDir]);
    expect(existsSync(join(cacheDir, 'worker-1'))).toBe(false);
    expect(readdirSync(cacheDir).filter((n) => /^[0-9a-f]{16}-/.test(n))).toEqual(kept);
    await one.kill('SIGKILL');
  }, 30_000);
});

describe('origin --workers 2, stopping', () => {
  it('SIGTERM lets the resizes in flight on every worker finish, then exits 0', async () => {
    const p = await startOrigin(env, ['--workers', '2']);
    const pinned = await clientsPerWorker(p.url, 2);
    const f = await upload(p.url, corpus('photos/Aqua.jpg'));
    // Slow requests, one per worker: a large WebP out of a 2560 px photo.
    const answers = pinned.map((c, i) => get(c, `/${f.fid}?w=${1800 + i}&fmt=webp`));
    // SIGTERM only once each worker says it is resizing (asked on fresh connections).
    const busy = new Set<number>();
    for (let i = 0; i < 200 && busy.size < 2; i++) {
      const c = new Client(p.url);
      const h = JSON.parse((await get(c, '/healthz')).body.toString('utf8')) as { worker: number; resize: { running: number } };
      await c.close();
      if (h.resize.running > 0) busy.add(h.worker);
    }
    expect(busy.size).toBe(2);
    const exited = p.kill('SIGTERM');
    for (const a of await Promise.all(answers)) {
      expect(a.status).toBe(200);
      expect(a.headers['content-type']).toBe('image/webp');
      expect(a.body.subarray(8, 12).toString('latin1')).toBe('WEBP');
    }
    expect(await exited).toBe(0);
    await Promise.all(pinned.map((c) => c.destroy()));
  }, 60_000);
});

describe('origin --workers 2, failures of the pool itself', () => {
  it('workers exit when their primary is SIGKILLed', async () => {
    const o = await startOrigin(env, ['--workers', '2']);
    const pids = workerPids(o.child.pid!);
    expect(pids).toHaveLength(2);
    await o.kill('SIGKILL');
    for (let i = 0; i < 50 && pids.some(alive); i++) await sleep(100);
    expect(pids.filter(alive)).toEqual([]);
  }, 30_000);

  it('a start that fails in the workers fails the command with their exit code', async () => {
    const r = await run(['origin', '--nameserver', env.cluster.nameserver.url, '--port', '0', '--workers', '2', '--presets', '{not json'], { env: { UGCFS_CLUSTER_SECRET: env.cluster.secret } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--presets');
  }, 30_000);

  it('refuses --workers 0', async () => {
    const r = await run(['origin', '--nameserver', env.cluster.nameserver.url, '--workers', '0'], { env: { UGCFS_CLUSTER_SECRET: env.cluster.secret } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--workers');
  });
});
