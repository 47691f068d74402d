// A real CDN edge in front of the origin: nginx with proxy_cache. It must cache variants
// on the strength of the origin's headers alone, revalidate with a 304, and stop sending
// repeat requests to the origin (counted through the origin's own metrics).
// Needs the Debian package nginx-light (or nginx); skips with that reason when absent.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/proc.ts';
import { freePort } from '../helpers/cluster.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { corpus, http, scratchDir, startEnv, startOrigin, stopAll, upload, type Env } from './origin-env.ts';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p));
const reason = NGINX ? '' : ' (SKIPPED: nginx is not installed; apt-get install nginx-light)';

let env: Env;
let nginx: ChildProcess | undefined;
let origin: string;
let edge: string;

function nginxConf(dir: string, port: number, upstream: string): string {
  return `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  proxy_cache_path ${dir}/cache levels=1:2 keys_zone=edge:4m max_size=256m inactive=1h use_temp_path=off;
  server {
    listen 127.0.0.1:${port};
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_cache edge;
    proxy_cache_key $request_uri;
    proxy_cache_revalidate on;
    add_header X-Edge-Cache $upstream_cache_status always;
    # Cached for as long as the origin's Cache-Control says (a year for files and variants).
    location / { proxy_pass ${upstream}; }
    # Same origin, but the edge treats answers as stale after 1 s, to watch it revalidate.
    location /short/ {
      proxy_pass ${upstream}/;
      proxy_ignore_headers Cache-Control Expires;
      proxy_cache_valid 200 1s;
    }
  }
}
`;
}

/** Requests that reached the origin's file routes (not /metrics or /healthz), optionally by status. */
function originHits(status?: number): Promise<number> {
  return metric(origin, 'ugcfs_http_requests_total', status === undefined ? { route: '/*' } : { status: String(status) }, { sum: true });
}

beforeAll(async () => {
  if (!NGINX) return;
  env = await startEnv();
  origin = (await startOrigin(env)).url;
  const dir = scratchDir(env);
  mkdirSync(join(dir, 'cache'), { recursive: true });
  const port = await freePort();
  writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, port, origin));
  nginx = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'ignore' });
  edge = `http://127.0.0.1:${port}`;
  await waitFor('nginx edge', async () => (await http(`${edge}/healthz`)).status === 200);
}, 120_000);

afterAll(async () => {
  nginx?.kill('SIGKILL');
  await stopAll(env);
});

describe.skipIf(!NGINX)(`nginx proxy_cache in front of the origin${reason}`, () => {
  it('caches variants and originals, so repeats never reach the origin', async () => {
    const f = await upload(origin, corpus('photos/Aqua.jpg'));
    for (const path of [`/${f.fid}.jpg_300x300xz.jpg`, `/${f.fid}?w=200&fmt=webp`, `/${f.fid}.jpg`]) {
      const before = await originHits();
      const first = await http(edge + path);
      expect([first.status, first.headers['x-edge-cache']], path).toEqual([200, 'MISS']);
      expect(await originHits(), path).toBe(before + 1);
      // the keys a purging CDN files the answer under (docs/ORIGIN.md, "Edge purge")
      expect([first.headers['surrogate-key'], first.headers['cache-tag']], path).toEqual([f.fid, f.fid]);
      for (let i = 0; i < 3; i++) {
        const again = await http(edge + path);
        expect([again.status, again.headers['x-edge-cache']], path).toEqual([200, 'HIT']);
        expect(again.body.equals(first.body)).toBe(true);
        expect(again.headers.etag).toBe(first.headers.etag);
      }
      // A client's own revalidation is answered by the edge.
      const cond = await http(edge + path, { headers: { 'if-none-match': first.headers.etag! } });
      expect(cond.status).toBe(304);
      expect(await originHits(), path).toBe(before + 1);
    }
  });

  it('revalidates a stale copy with a 304 from the origin', async () => {
    const f = await upload(origin, corpus('photos/Spring.png'));
    const path = `/short/${f.fid}?w=160`;
    const first = await http(edge + path);
    expect([first.status, first.headers['x-edge-cache']]).toEqual([200, 'MISS']);
    const notModifiedBefore = await originHits(304);
    await new Promise((r) => setTimeout(r, 2200)); // let the edge's 1 s validity lapse (nginx counts whole seconds)
    const second = await http(edge + path);
    expect([second.status, second.headers['x-edge-cache']]).toEqual([200, 'REVALIDATED']);
    expect(second.body.equals(first.body)).toBe(true);
    expect((await originHits(304)) - notModifiedBefore).toBe(1);
  });

  it('keeps error answers short-lived at the edge', async () => {
    const r = await http(`${edge}/1AAAAAQAAAAAAAAAAAAAA?w=100`);
    expect(r.status).toBe(404);
    expect(r.headers['cache-control']).toBe('public, max-age=10');
  });
});
