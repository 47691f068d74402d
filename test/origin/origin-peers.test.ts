// Several origins over one cluster: a hashring gives each variant one owner, so two origins
// compute each variant once between them; deletes reach every origin before DELETE answers;
// a dead owner costs a local compute, not an error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/cluster.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { corpus, http, startEnv, startOrigin, stopAll, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';
import type { Proc } from '../helpers/proc.ts';

let env: Env;
let a: Proc;
let b: Proc;

beforeAll(async () => {
  env = await startEnv();
  const ports = [await freePort(), await freePort()];
  const peers = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
  const started = await Promise.all(ports.map((p) => startOrigin(env, ['--port', String(p), '--peers', peers])));
  a = started[0]!;
  b = started[1]!;
});
afterAll(() => stopAll(env));

const variants = Array.from({ length: 12 }, (_, i) => `?w=${60 + i * 10}&fmt=webp`);

describe('origins sharing variants', () => {
  it('compute each variant once between them', async () => {
    const f = await upload(a.url, corpus('photos/Garden.jpg'));
    const before = (await metric(a.url, 'ugcfs_resizes_total', {}, { sum: true })) + (await metric(b.url, 'ugcfs_resizes_total', {}, { sum: true }));
    for (const v of variants) {
      const [ra, rb] = [await http(`${a.url}/${f.fid}${v}`), await http(`${b.url}/${f.fid}${v}`)];
      expect([ra.status, rb.status], v).toEqual([200, 200]);
      expect(rb.body.equals(ra.body), v).toBe(true);
      expect(rb.headers.etag).toBe(ra.headers.etag);
    }
    const resizesA = await metric(a.url, 'ugcfs_resizes_total', {}, { sum: true });
    const resizesB = await metric(b.url, 'ugcfs_resizes_total', {}, { sum: true });
    expect(resizesA + resizesB - before).toBe(variants.length);
    // Both own a share (12 keys on a two-node ring), and both asked the other.
    expect(await metric(a.url, 'ugcfs_peer_fetches_total', { result: 'ok' })).toBeGreaterThan(0);
    expect(await metric(b.url, 'ugcfs_peer_fetches_total', { result: 'ok' })).toBeGreaterThan(0);
  });

  it('forget a deleted file everywhere before the DELETE answers', async () => {
    const f = await upload(a.url, corpus('photos/LadyBird.jpg'));
    const paths = [`/${f.fid}`, `/${f.fid}.jpg`, ...variants.map((v) => `/${f.fid}${v}`), `/${f.fid}.jpg_100x100.jpg`];
    for (const p of paths) for (const o of [a, b]) expect((await http(o.url + p)).status).toBe(200);
    // Cached on both now (second reads are hits).
    expect((await http(`${b.url}/${f.fid}${variants[0]}`)).headers['x-cache']).toBe('HIT');
    expect((await http(`${b.url}/${f.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH })).status).toBe(204);
    // No waiting at all: the purge reached both origins before the 204 (well inside 5 s).
    for (const p of paths) for (const o of [a, b]) expect((await http(o.url + p)).status, `${o.url}${p}`).toBe(404);
  });

  it('guard the internal routes with the cluster secret', async () => {
    const f = await upload(a.url, corpus('exif/f1-exif.jpg'));
    const v = await http(`${a.url}/_internal/variant/${f.fid}?v=20x0.inside.auto.q0&n=0`);
    expect([v.status, v.json().error.code]).toEqual([401, 'UGCFS_ERR_UNAUTHORIZED']);
    const p = await http(`${a.url}/_internal/purge`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-ugcfs-secret': 'wrong' }, body: JSON.stringify({ fid: f.fid }) });
    expect(p.status).toBe(401);
    expect((await http(`${a.url}/${f.fid}`)).status).toBe(200);
    const ok = await http(`${a.url}/_internal/variant/${f.fid}?v=20x0.inside.auto.q0&n=0`, { headers: { 'x-ugcfs-secret': env.cluster.secret } });
    expect([ok.status, ok.headers['content-type']]).toEqual([200, 'image/jpeg']);
  });

  it('compute locally when the owner is down', async () => {
    const f = await upload(a.url, corpus('photos/Aqua.jpg'));
    await b.kill('SIGKILL');
    const before = await metric(a.url, 'ugcfs_resizes_total', {}, { sum: true });
    for (const v of variants) expect((await http(`${a.url}/${f.fid}${v}`)).status, v).toBe(200);
    expect((await metric(a.url, 'ugcfs_resizes_total', {}, { sum: true })) - before).toBe(variants.length);
    expect(await metric(a.url, 'ugcfs_peer_fetches_total', { result: 'unreachable' })).toBeGreaterThan(0);
    // Deleting still works with a peer down; the survivor forgets the file at once.
    expect((await http(`${a.url}/${f.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH })).status).toBe(204);
    expect((await http(`${a.url}/${f.fid}${variants[0]}`)).status).toBe(404);
  });
});
