// deploy/nginx-edge.conf, the compose file's CDN edge, run by real nginx in front of two real
// origins (with --peers) on a real cluster: service names are mapped to loopback ports,
// nothing else in the config changes (test/deploy/edge-env.ts). Needs Debian package nginx
// (or nginx-light); skips, saying so, without it. What the edge refuses and rate-limits is
// in edge-safety.test.ts.
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS, ROOT } from '../helpers/proc.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { NGINX, NO_NGINX_REASON, raw, startEdge, type EdgeEnv } from './edge-env.ts';

const TOKEN = `edge-upload-token-${randomBytes(16).toString('hex')}`;

describe.skipIf(!NGINX)(`the compose nginx edge in front of two origins${NO_NGINX_REASON}`, () => {
  let env: EdgeEnv;
  let edge = '';
  let edgePort = 0;
  let origins: EdgeEnv['origins'] = [];

  beforeAll(async () => {
    env = await startEdge({
      originArgs: (_i, port, urls, nameserver) => ['origin', '--nameserver', nameserver, '--port', String(port), '--peers', urls.join(',')],
      env: { UGCFS_UPLOAD_TOKENS: TOKEN },
    });
    ({ edge, edgePort, origins } = env);
  }, 120_000);

  afterAll(async () => {
    await env?.stop();
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

  it('answers /edge-healthz to loopback only, without asking an origin', async () => {
    const before = await env.originRequests();
    expect((await raw(`${edge}/edge-healthz`)).status).toBe(200);
    // 127.0.0.2 is another machine as far as the edge can tell
    expect((await raw(`${edge}/edge-healthz`, { from: '127.0.0.2' })).status).toBe(404);
    expect(await env.originRequests()).toBe(before);
  });
});
