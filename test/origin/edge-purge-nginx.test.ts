// Edge purge with real nginx from Debian running deploy/nginx-edge.conf and its purge server
// (deploy/nginx-edge-purge.conf, the cache-purge module) in front of two origins with --peers.
// nginx purges by exact cache key, and its upstream hash spreads a file's URLs over both
// origins, so each origin must purge the URLs it served itself: a delete through one origin
// makes the edge forget every URL of the file within 5 s (the interface's bound), and an
// edge that was down during the delete is purged once it is back, its disk cache intact.
// Needs Debian's nginx and libnginx-mod-http-cache-purge; skips, saying so, without them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/cluster.ts';
import { edgeForgot, edgeGet, warmEdge } from '../helpers/edge-probe.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { NGINX_PURGE_MISSING, nginxPurgeEdge, type NginxPurgeEdge } from '../helpers/nginx-purge-edge.ts';
import { start, waitFor, type Proc } from '../helpers/proc.ts';
import { corpus, http, startEnv, stopAll, upload, UPLOAD_AUTH, UPLOAD_TOKEN, type Env } from './origin-env.ts';

const reason = NGINX_PURGE_MISSING ? ` (SKIPPED: ${NGINX_PURGE_MISSING})` : '';
if (NGINX_PURGE_MISSING) console.warn(`nginx edge purge tests${reason}`);

let env: Env;
let edge: NginxPurgeEdge;
const origins: Proc[] = [];

beforeAll(async () => {
  if (NGINX_PURGE_MISSING) return;
  env = await startEnv();
  const ports = [await freePort(), await freePort()];
  edge = await nginxPurgeEdge(ports);
  const peers = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
  for (const port of ports) {
    const o = await start(['origin', '--nameserver', env.cluster.nameserver.url, '--port', String(port), '--peers', peers, '--purge-edges', edge.purgeUrl], {
      env: { UGCFS_CLUSTER_SECRET: env.cluster.secret, UGCFS_UPLOAD_TOKENS: UPLOAD_TOKEN },
    });
    env.procs.push(o);
    origins.push(o);
  }
  await edge.start();
}, 120_000);

afterAll(async () => {
  await edge?.close();
  await stopAll(env);
});

async function health(o: Proc): Promise<{ edgePurgeUrls: number; edgePurgePending: number }> {
  return (await http(`${o.url}/healthz`)).json();
}



const sent = (o: Proc, result: 'sent' | 'failed') => metric(o.url, 'ugcfs_edge_purge_requests_total', { edge: edge.purgeUrl, result });

describe.skipIf(!!NGINX_PURGE_MISSING)(`nginx edge with the cache-purge module${reason}`, () => {
  it('a delete through one origin makes the edge forget every URL either origin served, within 5 s', async () => {
    const f = await upload(origins[0]!.url, corpus('photos/Aqua.jpg'));
    const legacyPath = `/uploads/2018/${f.fid.slice(-6)} old.jpg`;
    await env.cluster.client.legacySet(legacyPath, f.fid);
    const paths = [
      `/${f.fid}`, `/${f.fid}.jpg`, `/${f.fid}?w=120`, `/${f.fid}?w=200&fmt=webp`, `/${f.fid}.jpg_300x300xz.jpg`,
      `/${f.fid}.jpg_160x160q70.jpg_.webp`, encodeURI(legacyPath), `${encodeURI(legacyPath)}?w=90`,
    ];
    const before = await Promise.all(origins.map(health));
    await warmEdge(edge.url, paths);
    // nginx sent each URL to one origin, once; each remembers what it served
    const after = await Promise.all(origins.map(health));
    const remembered = after.map((h, i) => h.edgePurgeUrls - before[i]!.edgePurgeUrls);
    console.log(`URLs served by origin 1 / origin 2: ${remembered.join(' / ')}`);
    expect(remembered[0]! + remembered[1]!).toBe(paths.length);
    const r = await http(`${origins[0]!.url}/${f.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH });
    expect(r.status).toBe(204);
    const ms = await edgeForgot(edge.url, paths, 5_000);
    console.log(`nginx forgot ${paths.length} URLs ${ms} ms after the delete was acknowledged`);
    const done = await Promise.all(origins.map(health));
    expect(done.map((h, i) => h.edgePurgeUrls - before[i]!.edgePurgeUrls)).toEqual([0, 0]);
    // every URL was purged by the origin that served it (one request each, plus each
    // origin's first key purge, which taught it that this edge purges by URL)
    const total = (await sent(origins[0]!, 'sent')) + (await sent(origins[1]!, 'sent'));
    expect(total).toBeGreaterThanOrEqual(paths.length);
  });

  it('purges a URL the origin first answered from its memory (the hit path) as well', async () => {
    const f = await upload(origins[0]!.url, corpus('photos/Aqua.jpg'));
    // the variant into both origins' memory by one spelling, then asked through the edge by another
    for (const o of origins) expect((await http(`${o.url}/${f.fid}?w=130`)).status).toBe(200);
    const path = `/${f.fid}.jpg?w=130`;
    const first = await edgeGet(edge.url, path);
    expect([first.status, first.headers['x-edge-cache'], first.headers['x-cache']]).toEqual([200, 'MISS', 'HIT']);
    expect((await edgeGet(edge.url, path)).headers['x-edge-cache']).toBe('HIT');
    // only the addresses the purge server allows may purge: 127.0.0.2 is refused, nothing goes
    expect((await edgeGet(edge.purgeUrl, path, { method: 'PURGE', from: '127.0.0.2' })).status).toBe(403);
    expect((await edgeGet(edge.url, path)).headers['x-edge-cache']).toBe('HIT');
    const r = await http(`${origins[1]!.url}/${f.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH });
    expect(r.status).toBe(204);
    await edgeForgot(edge.url, [path], 5_000);
  });

  it('an edge that is down during the delete is purged once it is back, its cache intact', async () => {
    const gone = await upload(origins[0]!.url, corpus('photos/Spring.png'));
    const kept = await upload(origins[0]!.url, corpus('photos/Aqua.jpg'));
    const paths = [`/${gone.fid}.png`, `/${gone.fid}?w=100&fmt=jpeg`, `/${gone.fid}.png_120x120.png`];
    const control = [`/${kept.fid}?w=110`];
    await warmEdge(edge.url, [...paths, ...control]);
    const failedBefore = (await sent(origins[0]!, 'failed')) + (await sent(origins[1]!, 'failed'));
    await edge.stop();
    const r = await http(`${origins[1]!.url}/${gone.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH });
    expect(r.status).toBe(204);
    await waitFor('failed purge attempts', async () => (await sent(origins[0]!, 'failed')) + (await sent(origins[1]!, 'failed')) >= failedBefore + 2);
    const pending = (await Promise.all(origins.map(health))).reduce((n, h) => n + h.edgePurgePending, 0);
    expect(pending).toBeGreaterThanOrEqual(1);
    await edge.start();
    // the retry comes within the backoff's cap (10 s) of the edge coming back
    await edgeForgot(edge.url, paths, 15_000);
    // the restarted edge kept what it had: the file that was not deleted is still a HIT
    const c = await edgeGet(edge.url, control[0]!);
    expect([c.status, c.headers['x-edge-cache']]).toEqual([200, 'HIT']);
    await waitFor('no purge pending', async () => (await Promise.all(origins.map(health))).every((h) => h.edgePurgePending === 0));
  });
});
