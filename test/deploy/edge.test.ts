// deploy/nginx-edge.conf, the compose file's CDN edge, run by real nginx in front of two real
// origins (with --peers) on a real cluster: service names are mapped to loopback ports,
// nothing else in the config changes. Needs Debian package nginx; skips without it.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS, ROOT, start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
const TOKEN = 'edge-upload-token';

describe.skipIf(!NGINX)('the compose nginx edge in front of two origins (needs Debian package nginx)', () => {
  const tmp = tempDir('ugcfs-edge-');
  let cluster: Cluster;
  const origins: Proc[] = [];
  let nginx: ChildProcess | undefined;
  let edge = '';
  let edgePort = 0;

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 2, racks: ['a', 'b'] });
    const ports = [await freePort(), await freePort()];
    const peers = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
    for (const port of ports) {
      origins.push(await start(['origin', '--nameserver', cluster.nameserver.url, '--port', String(port), '--peers', peers], { env: { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_UPLOAD_TOKENS: TOKEN } }));
    }
    const d = tmp.dir;
    let conf = readFileSync(join(ROOT, 'deploy', 'nginx-edge.conf'), 'utf8');
    conf = conf.replace('origin-1:8080', `127.0.0.1:${ports[0]}`).replace('origin-2:8080', `127.0.0.1:${ports[1]}`);
    edgePort = await freePort();
    conf = conf.replace(/proxy_cache_path \S+/, `proxy_cache_path ${join(d, 'cache')}`).replace('listen 80;', `listen 127.0.0.1:${edgePort};`);
    mkdirSync(join(d, 'cache'));
    writeFileSync(join(d, 'edge.conf'), conf);
    writeFileSync(join(d, 'nginx.conf'), `daemon off; master_process off; worker_processes 1; pid ${d}/nginx.pid; error_log ${d}/error.log warn; events { worker_connections 256; }
http { access_log off; client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi; include ${d}/edge.conf; }`);
    nginx = spawn(NGINX!, ['-p', d, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log')], { stdio: 'ignore' });
    edge = `http://127.0.0.1:${edgePort}`;
    await waitFor('nginx edge', async () => (await fetch(`${edge}/edge-healthz`)).status === 200);
  }, 120_000);

  afterAll(async () => {
    nginx?.kill('SIGKILL');
    for (const o of origins) await o.kill('SIGKILL');
    await cluster?.stop();
    tmp.cleanup();
  });

  it('passes uploads through, caches variants, spreads URLs over the origins and hides /metrics', async () => {
    const photo = readFileSync(join(CORPUS, 'photos', 'LadyBird.jpg'));
    const up = await fetch(`${edge}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${TOKEN}` }, body: photo });
    expect(up.status).toBe(201);
    const fid = ((await up.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;

    const seen = new Set<string>();
    for (const w of [100, 120, 140, 160, 180, 200, 220, 240]) {
      const url = `${edge}/${fid}.jpg?w=${w}`;
      const first = await fetch(url);
      expect(first.status).toBe(200);
      expect(first.headers.get('x-edge-cache')).toBe('MISS');
      const body1 = Buffer.from(await first.arrayBuffer());
      const second = await fetch(url);
      expect(second.headers.get('x-edge-cache')).toBe('HIT');
      expect(Buffer.from(await second.arrayBuffer()).equals(body1)).toBe(true);
      // Browsers still get the origin's year-long immutable header.
      expect(second.headers.get('cache-control')).toContain('immutable');
    }
    // The consistent hash sends different URLs to both origins.
    for (const o of origins) {
      // every 200 GET but those of /metrics, which count earlier scrapes, not served files
      const m = await scrapeMetrics(o.url);
      const ok = { method: 'GET', status: '200' };
      const served = m.value('ugcfs_http_requests_total', ok, { sum: true }) - m.value('ugcfs_http_requests_total', { ...ok, route: '/metrics' });
      if (served > 0) seen.add(o.url);
    }
    expect(seen.size).toBe(2);
    expect((await fetch(`${edge}/metrics`)).status).toBe(404);
  });

  it('answers the compose health check command', () => {
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { healthcheck?: { test: string[] } }> };
    const test = compose.services.edge!.healthcheck!.test;
    expect(test.slice(0, 3)).toEqual(['CMD', 'bash', '-c']);
    const ok = spawnSync('bash', ['-c', test[3]!.replace('127.0.0.1/80', `127.0.0.1/${edgePort}`)]);
    expect(ok.status).toBe(0);
    const wrong = spawnSync('bash', ['-c', test[3]!.replace('127.0.0.1/80', `127.0.0.1/${edgePort}`).replace('/edge-healthz', '/nothing-here')]);
    expect(wrong.status).not.toBe(0);
  });
});
