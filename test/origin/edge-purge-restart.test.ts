// Pending edge purges survive the origin (origin/purge-journal.ts), against real nginx from
// Debian running deploy/nginx-edge.conf and its purge server: an edge that purges by exact
// URL, so the restarted origin must still know which URLs it served the deleted file by. The
// edge is down during the delete, the origin is SIGKILLed with the purge pending, started
// again on the same --cache-dir, and the edge, back with its cache intact, forgets every URL.
// And the URLs an origin served survive a graceful stop (origin/purge-url-snapshot.ts).
// Needs Debian's nginx and libnginx-mod-http-cache-purge; skips, saying so, without them.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/cluster.ts';
import { edgeForgot, edgeGet, warmEdge } from '../helpers/edge-probe.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { NGINX_PURGE_MISSING, nginxPurgeEdge, type NginxPurgeEdge } from '../helpers/nginx-purge-edge.ts';
import { waitFor, type Proc } from '../helpers/proc.ts';
import { corpus, http, scratchDir, startEnv, startOrigin, stopAll, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';

const reason = NGINX_PURGE_MISSING ? ` (SKIPPED: ${NGINX_PURGE_MISSING})` : '';
if (NGINX_PURGE_MISSING) console.warn(`edge purge restart tests${reason}`);

let env: Env;
let edge: NginxPurgeEdge;
let port: number;
let cacheDir: string;

beforeAll(async () => {
  if (NGINX_PURGE_MISSING) return;
  env = await startEnv();
  port = await freePort();
  cacheDir = scratchDir(env);
  edge = await nginxPurgeEdge([port]);
  await edge.start();
}, 120_000);

afterAll(async () => {
  await edge?.close();
  await stopAll(env);
});

// the same origin each time: its port (the edge's upstream) and its cache directory
const origin = () => startOrigin(env, ['--port', String(port), '--cache-dir', cacheDir, '--purge-edges', edge.purgeUrl]);
const pending = async (o: Proc) => metric(o.url, 'ugcfs_edge_purges_pending', { edge: edge.purgeUrl });

describe.skipIf(!!NGINX_PURGE_MISSING)(`an origin SIGKILLed with a purge pending${reason}`, () => {
  it('sends it after its restart, once the edge is back: every URL it served the file by', async () => {
    let o = await origin();
    const gone = await upload(o.url, corpus('photos/Spring.png'));
    const kept = await upload(o.url, corpus('photos/Aqua.jpg'));
    const paths = [`/${gone.fid}.png`, `/${gone.fid}?w=100&fmt=jpeg`, `/${gone.fid}.png_120x120.png`];
    const control = `/${kept.fid}?w=110`;
    await warmEdge(edge.url, [...paths, control]);
    await edge.stop();
    const r = await http(`${o.url}/${gone.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH });
    expect(r.status).toBe(204);
    await waitFor('a failed purge attempt', async () => (await metric(o.url, 'ugcfs_edge_purge_requests_total', { edge: edge.purgeUrl, result: 'failed' })) >= 1);
    expect(await pending(o)).toBe(1);
    expect(readdirSync(cacheDir)).toContain('edge-purges-0.journal');
    await o.kill('SIGKILL');

    // started again while the edge is still down: the purge is pending from the journal
    o = await origin();
    expect(await pending(o)).toBe(1);
    expect(o.lines.some((l) => l.includes('edge purges pending from the last run'))).toBe(true);
    await edge.start();
    // still cached at the edge until the origin's retry reaches it (backoff cap 10 s)
    await edgeForgot(edge.url, paths, 15_000);
    const c = await edgeGet(edge.url, control);
    expect([c.status, c.headers['x-edge-cache']]).toEqual([200, 'HIT']);
    await waitFor('no purge pending', async () => (await pending(o)) === 0);
    await waitFor('the confirmation in the journal', () => readFileSync(join(cacheDir, 'edge-purges-0.journal'), 'utf8').includes('{"d":'));

    // confirmed: a third start has nothing to send
    await o.kill('SIGKILL');
    o = await origin();
    expect(await pending(o)).toBe(0);
    expect(o.lines.some((l) => l.includes('edge purges pending from the last run'))).toBe(false);
    await o.kill('SIGKILL');
  });

  it('stopped gracefully, it remembers the URLs it served: a delete after the restart purges them', async () => {
    let o = await origin();
    const f = await upload(o.url, corpus('photos/Aqua.jpg'));
    const paths = [`/${f.fid}.jpg`, `/${f.fid}?w=140`, `/${f.fid}.jpg_90x90.jpg`];
    await warmEdge(edge.url, paths);
    expect(await o.kill('SIGTERM')).toBe(0);
    expect(readdirSync(cacheDir)).toContain('served-urls-0');
    o = await origin();
    expect(o.lines.some((l) => l.includes('served URLs of the last run loaded'))).toBe(true);
    // loaded once: the snapshot is gone until the next graceful stop
    expect(readdirSync(cacheDir)).not.toContain('served-urls-0');
    const r = await http(`${o.url}/${f.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH });
    expect(r.status).toBe(204);
    await edgeForgot(edge.url, paths, 5_000);
    await o.kill('SIGKILL');
  });
});
