// Edge purge with a real Varnish edge running deploy/varnish-edge.vcl (vmod xkey): a delete
// through the origin, or one made elsewhere and learnt from the delete feed, makes the edge
// forget the original, its variants and a legacy path within 5 s (the interface's bound);
// an edge that cannot be reached during the delete gets the purge when it is back; the
// --purge-webhook receives {fid, paths, keys}, retried after a failure.
// Needs Debian's varnish and varnish-modules; skips, saying so, without them.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/cluster.ts';
import { edgeForgot, edgeGet, warmEdge } from '../helpers/edge-probe.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { waitFor, type Proc } from '../helpers/proc.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { startVarnish, VARNISH_MISSING, type VarnishEdge } from '../helpers/varnish.ts';
import { corpus, http, rawGet, startEnv, startOrigin, stopAll, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';

const reason = VARNISH_MISSING ? ` (SKIPPED: ${VARNISH_MISSING})` : '';
if (VARNISH_MISSING) console.warn(`Varnish edge purge tests${reason}`);

interface Notice {
  fid: string;
  paths: string[];
  keys: string[];
}

let env: Env;
let origin: Proc;
/** an origin with no purge flags: deletes through it reach the purging one by the feed */
let other: Proc;
let varnish: VarnishEdge;
/** between the origin's purges and Varnish, to take the edge away from the origin */
let proxy: TcpProxy;
let hook: Server;
const notices: Notice[] = [];
const hookAttempts = new Map<string, number>();

/** --purge-token: the webhook must get it as a bearer token */
const PURGE_TOKEN = 'purge-' + randomBytes(24).toString('hex');
const legacyKey = (path: string) => 'legacy-' + createHash('sha256').update(path).digest('hex').slice(0, 32);

beforeAll(async () => {
  if (VARNISH_MISSING) return;
  env = await startEnv();
  // The webhook refuses each file's first notice (503), so only a retry gets through.
  hook = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const n = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Notice;
      const tries = (hookAttempts.get(n.fid) ?? 0) + 1;
      hookAttempts.set(n.fid, tries);
      if (req.headers.authorization !== `Bearer ${PURGE_TOKEN}`) return void res.writeHead(401).end();
      if (tries === 1 || req.headers['content-type'] !== 'application/json') return void res.writeHead(503).end();
      notices.push(n);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  const hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/purge`;
  const varnishPort = await freePort();
  proxy = await startTcpProxy(varnishPort);
  origin = await startOrigin(env, ['--purge-edges', proxy.url, '--purge-webhook', hookUrl, '--delete-feed-interval-ms', '500'], { UGCFS_PURGE_TOKEN: PURGE_TOKEN });
  other = await startOrigin(env);
  varnish = await startVarnish({ originPort: Number(new URL(origin.url).port), port: varnishPort });
}, 120_000);

afterAll(async () => {
  await varnish?.stop();
  await proxy?.close();
  hook?.close();
  await stopAll(env);
});

async function del(via: string, fid: string): Promise<void> {
  const r = await http(`${via}/${fid}`, { method: 'DELETE', headers: UPLOAD_AUTH });
  expect(r.status).toBe(204);
}

describe.skipIf(!!VARNISH_MISSING)(`Varnish edge with xkey${reason}`, () => {
  it('answers name the fid, and a legacy path its key, in Surrogate-Key and Cache-Tag (hit path too)', async () => {
    const f = await upload(origin.url, corpus('photos/Aqua.jpg'));
    const path = `/old/shop/${f.fid.slice(-6)} a,b.jpg`;
    await env.cluster.client.legacySet(path, f.fid);
    for (const p of [`/${f.fid}`, `/${f.fid}.jpg?w=64`]) {
      const miss = await http(origin.url + p);
      const hit = await http(origin.url + p);
      expect(hit.headers['x-cache'], p).toBe('HIT');
      for (const r of [miss, hit]) expect([r.headers['surrogate-key'], r.headers['cache-tag']], p).toEqual([f.fid, f.fid]);
    }
    const legacy = await rawGet(origin.url, encodeURI(path).replace(/,/g, '%2C') + '?w=64');
    expect(legacy.status).toBe(200);
    expect(legacy.headers['surrogate-key']).toBe(`${f.fid} ${legacyKey(path)}`);
    expect(legacy.headers['cache-tag']).toBe(`${f.fid},${legacyKey(path)}`);
    // the edge passes the keys on (for a CDN tier behind it) but not its own xkey header
    const viaEdge = await edgeGet(varnish.url, `/${f.fid}`);
    expect(viaEdge.headers['surrogate-key']).toBe(f.fid);
    expect(viaEdge.headers.xkey).toBeUndefined();
    // only the addresses in the VCL's purge ACL may purge: 127.0.0.2 is refused, nothing goes
    const stranger = await edgeGet(varnish.url, '/', { method: 'PURGE', headers: { 'xkey-purge': f.fid }, from: '127.0.0.2' });
    expect(stranger.status).toBe(403);
    expect((await edgeGet(varnish.url, `/${f.fid}`)).headers['x-edge-cache']).toBe('HIT');
  });

  it('a delete through the origin makes the edge forget the original, variants and a legacy path within 5 s', async () => {
    const f = await upload(origin.url, corpus('photos/Aqua.jpg'));
    const legacyPath = `/uploads/2019/05/${f.fid.slice(-6)} sea.jpg`;
    await env.cluster.client.legacySet(legacyPath, f.fid);
    const paths = [`/${f.fid}.jpg`, `/${f.fid}?w=120`, `/${f.fid}.jpg_200x200.jpg`, encodeURI(legacyPath), `${encodeURI(legacyPath)}_100x100.jpg`];
    await warmEdge(varnish.url, paths);
    await del(origin.url, f.fid);
    const ms = await edgeForgot(varnish.url, paths, 5_000);
    console.log(`Varnish forgot ${paths.length} URLs ${ms} ms after the delete was acknowledged`);
    expect(await metric(origin.url, 'ugcfs_edge_purge_requests_total', { edge: proxy.url, result: 'sent' })).toBeGreaterThanOrEqual(1);
    // The webhook: refused once, then given every URL the origin served the file by, and its keys.
    const n = await waitFor('the webhook notice', () => notices.find((x) => x.fid === f.fid), 20_000);
    expect(hookAttempts.get(f.fid)).toBeGreaterThanOrEqual(2);
    expect([...n.paths].sort()).toEqual([...paths].sort());
    expect([...n.keys].sort()).toEqual([f.fid, legacyKey(legacyPath)].sort());
  });

  it('a delete made elsewhere (another origin, learnt from the delete feed) purges the edge too', async () => {
    const f = await upload(origin.url, corpus('photos/Spring.png'));
    const paths = [`/${f.fid}.png`, `/${f.fid}?w=90&fmt=webp`];
    await warmEdge(varnish.url, paths);
    await del(other.url, f.fid);
    const ms = await edgeForgot(varnish.url, paths, 5_000);
    console.log(`Varnish forgot a file deleted through another origin after ${ms} ms`);
  });

  it('an edge that cannot be reached during the delete gets the purge once it is back', async () => {
    const f = await upload(origin.url, corpus('photos/Aqua.jpg'));
    const paths = [`/${f.fid}`, `/${f.fid}?w=150&h=150&fit=cover`];
    await warmEdge(varnish.url, paths);
    const failedBefore = await metric(origin.url, 'ugcfs_edge_purge_requests_total', { edge: proxy.url, result: 'failed' });
    proxy.set({ mode: 'refuse' });
    await del(origin.url, f.fid);
    await waitFor('failed purge attempts', async () => (await metric(origin.url, 'ugcfs_edge_purge_requests_total', { edge: proxy.url, result: 'failed' })) >= failedBefore + 2);
    expect(await metric(origin.url, 'ugcfs_edge_purges_pending', { edge: proxy.url })).toBe(1);
    // Not purged yet: the edge still answers from its copy.
    for (const p of paths) expect((await edgeGet(varnish.url, p)).headers['x-edge-cache'], p).toBe('HIT');
    proxy.set({ mode: 'pass' });
    // the retry comes within the backoff's cap (10 s) of the edge coming back
    await edgeForgot(varnish.url, paths, 15_000);
    expect(await metric(origin.url, 'ugcfs_edge_purges_pending', { edge: proxy.url })).toBe(0);
  });
});
