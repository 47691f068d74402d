// The compose stack is safe by default: real nginx with deploy/nginx-edge.conf in front of
// two real origins started with docker-compose.yml's own origin flags (strict sizes and
// presets; service names mapped to loopback, test/deploy/edge-env.ts). Through the edge:
// reads and uploads work; DELETE, /_internal/*, /metrics and /healthz are refused without
// any origin hearing of them (counted on the origins' own /metrics, scraped directly);
// variant misses are rate-limited per client while cache hits are not.
// Needs Debian package nginx (or nginx-light); skips, saying so, without it.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/base/config.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { ROOT } from '../helpers/proc.ts';
import { CORPUS, EDGE_CONF, NGINX, NO_NGINX_REASON, raw, startEdge, type EdgeEnv } from './edge-env.ts';

const TOKEN = `edge-safety-upload-token-${randomBytes(16).toString('hex')}`;
const ADMIN = `edge-safety-admin-token-${randomBytes(16).toString('hex')}`;
const MiB = 1024 * 1024;

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { command: string[] }> };

/** origin-<i+1>'s compose command, with its addresses and cache dir moved to this machine */
function composeOriginArgs(i: number, port: number, urls: string[], nameserver: string, dir: string): string[] {
  const cmd = [...compose.services[`origin-${i + 1}`]!.command];
  const set = (flag: string, value: string) => {
    const k = cmd.indexOf(flag);
    if (k < 0) throw new Error(`docker-compose.yml: origin-${i + 1} has no ${flag}`);
    cmd[k + 1] = value;
  };
  set('--nameserver', nameserver);
  set('--host', '127.0.0.1');
  set('--port', String(port));
  set('--cache-dir', dir);
  set('--peers', urls.join(','));
  set('--public-url', urls[i]!);
  return cmd;
}

/** nginx size syntax: 26m, 512k, 1g or bytes */
function nginxSize(s: string): number {
  const m = /^(\d+)([kmg]?)$/i.exec(s)!;
  return Number(m[1]) * ({ '': 1, k: 1024, m: MiB, g: 1024 * MiB } as Record<string, number>)[m[2]!.toLowerCase()]!;
}

let env: EdgeEnv;
let edge = '';

async function upload(photo: string): Promise<string> {
  const r = await fetch(`${edge}/upload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: readFileSync(join(CORPUS, 'photos', photo)) });
  expect(r.status).toBe(201);
  return ((await r.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
}

describe.skipIf(!NGINX)(`the compose edge and origins are safe by default${NO_NGINX_REASON}`, () => {
  beforeAll(async () => {
    env = await startEdge({ originArgs: composeOriginArgs, env: { UGCFS_UPLOAD_TOKENS: TOKEN, UGCFS_ADMIN_TOKEN: ADMIN } });
    edge = env.edge;
  }, 120_000);

  afterAll(async () => {
    await env?.stop();
  });

  it('serves uploads, originals and the compose presets and sizes through the edge, nothing else', async () => {
    // The README's `curl -F file=@photo.jpg` form, and raw bytes.
    const form = new FormData();
    form.append('file', new Blob([readFileSync(join(CORPUS, 'photos', 'Garden.jpg'))]), 'Garden.jpg');
    const multi = await fetch(`${edge}/upload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: form });
    expect(multi.status).toBe(201);
    const fid = await upload('Aqua.jpg');
    // The edge is a proxy on the origins' own machine: its clients are not local for that.
    const anon = await raw(`${edge}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: readFileSync(join(CORPUS, 'photos', 'Aqua.jpg')) });
    expect(anon.status).toBe(401);
    expect(JSON.parse(anon.body.toString()).error.code).toBe('UGCFS_ERR_UNAUTHORIZED');

    for (const path of [`/${fid}.jpg`, `/${fid}.jpg?preset=thumb`, `/${fid}.jpg?w=480`, `/${fid}.jpg_160x160.jpg`, `/${fid}.jpg?w=400&h=400&fmt=webp&q=70`]) {
      const first = await raw(edge + path);
      expect([first.status, first.headers['x-edge-cache']], path).toEqual([200, 'MISS']);
      const again = await raw(edge + path, { method: 'HEAD' });
      expect([again.status, again.headers['x-edge-cache']], path).toEqual([200, 'HIT']);
    }
    // Strict mode: a size that is neither a preset nor allowed is refused by the origin.
    const odd = await raw(`${edge}/${fid}.jpg?w=123`);
    expect(odd.status).toBe(403);
    expect(JSON.parse(odd.body.toString()).error.code).toBe('UGCFS_ERR_NOT_ALLOWED');
  });

  it('refuses DELETE, other methods, /_internal/*, /metrics and /healthz without asking an origin', async () => {
    const fid = await upload('Spring.png');
    const secret = { 'x-ugcfs-secret': env.cluster.secret, 'content-type': 'application/json' };
    const refused: Array<[method: string, path: string, status: number, headers?: Record<string, string>, body?: string]> = [
      ['POST', '/_internal/purge', 404, secret, JSON.stringify({ fid })],
      ['GET', `/_internal/variant/${fid}?v=w100`, 404, secret],
      ['POST', '/%5Finternal/purge', 404, secret, JSON.stringify({ fid })],
      ['POST', '//_internal/purge', 404, secret, JSON.stringify({ fid })],
      ['POST', '/x/../_internal/purge', 404, secret, JSON.stringify({ fid })],
      ['GET', '/metrics', 404],
      ['GET', '/metrics/', 404],
      ['GET', '/healthz', 404],
      ['HEAD', '/healthz', 404],
      ['DELETE', `/${fid}.png`, 405, { authorization: `Bearer ${TOKEN}` }],
      ['DELETE', `/${fid}`, 405, { authorization: `Bearer ${ADMIN}` }],
      ['PUT', `/${fid}.png`, 405],
      ['PATCH', `/${fid}.png`, 405],
      ['OPTIONS', `/${fid}.png`, 405],
      ['POST', `/${fid}.png`, 405],
      ['GET', '/upload', 405],
    ];
    const before = await env.originRequests();
    for (const [method, path, status, headers, body] of refused) {
      const r = await raw(edge + path, { method, headers, body: body === undefined ? undefined : Buffer.from(body) });
      expect(r.status, `${method} ${path}`).toBe(status);
      if (status === 405) expect(r.headers.allow, `${method} ${path}`).toBe(path === '/upload' ? 'POST' : 'GET, HEAD');
    }
    expect(await env.originRequests(), 'requests that reached an origin').toBe(before);

    // The file is untouched, and deletes work where the operator sends them: an origin directly.
    expect((await raw(`${edge}/${fid}.png`)).status).toBe(200);
    const del = await raw(`${env.origins[0]!.url}/${fid}.png`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(del.status).toBe(204);
  });

  it("caps upload bodies in step with the compose origins' --max-upload-bytes", async () => {
    const origin = compose.services['origin-1']!.command;
    const { config } = loadConfig(ORIGIN_OPTIONS, { argv: origin.slice(1), env: {} });
    const maxUpload = config.maxUploadBytes;
    const conf = readFileSync(EDGE_CONF, 'utf8');
    const uploadBlock = conf.slice(conf.indexOf('location = /upload {'), conf.indexOf('location', conf.indexOf('location = /upload {') + 1));
    const cap = nginxSize(/client_max_body_size (\S+);/.exec(uploadBlock)![1]!);
    // Exactly the origin's limit: a larger body reaching an origin would be refused early
    // and closed mid-send, which nginx reports as 502, not the 413 it is.
    expect(cap).toBe(maxUpload);
    for (const m of conf.matchAll(/client_max_body_size (\S+);/g)) expect(nginxSize(m[1]!)).toBeLessThanOrEqual(cap);

    const auth = { authorization: `Bearer ${TOKEN}`, 'content-type': 'image/jpeg' };
    const before = await env.originRequests();
    // Over the cap: refused on the Content-Length alone, before any body is sent.
    const tooBig = await raw(`${edge}/upload`, { method: 'POST', headers: auth, declaredLength: cap + 1 });
    expect(tooBig.status).toBe(413);
    expect(await env.originRequests()).toBe(before);
    // At the cap: passed on whole, and the origin has the last word (these bytes are no image).
    const atCap = await raw(`${edge}/upload`, { method: 'POST', headers: auth, body: Buffer.alloc(cap) });
    expect(atCap.status).toBe(415);
    expect(JSON.parse(atCap.body.toString()).error.code).toBe('UGCFS_ERR_UNSUPPORTED_TYPE');
    expect(await env.originRequests()).toBe(before + 1);
  });

  it('rate-limits a burst of variant misses per client with 429 and Retry-After, never cache hits', async () => {
    const fid = await upload('FreshFlower.jpg');
    const original = `/${fid}.jpg`;
    const thumb = `/${fid}.jpg?preset=thumb`;
    for (const path of [original, thumb]) {
      expect((await raw(edge + path)).headers['x-edge-cache']).toBe('MISS');
      expect((await raw(edge + path)).headers['x-edge-cache']).toBe('HIT');
    }

    // 150 distinct allowed variants at once from one client, each claiming to be someone
    // else (the edge sets the address it limits by itself).
    const paths: string[] = [];
    for (const size of ['100x100', '160x160', '200x200']) {
      const [w, h] = size.split('x');
      for (let q = 1; q <= 50; q++) paths.push(`/${fid}.jpg?w=${w}&h=${h}&q=${q}`);
    }
    // The warm-up misses above count against this client too; at 10 r/s they drain in 0.2 s.
    await new Promise((r) => setTimeout(r, 300));
    const before = await env.originRequests({ clientOnly: true });
    let sawLimit!: () => void;
    const limited = new Promise<void>((r) => (sawLimit = r));
    const burst = paths.map((p, i) =>
      raw(edge + p, { headers: { 'x-real-ip': `10.0.${i >> 8}.${i & 255}`, 'x-forwarded-for': `10.1.${i >> 8}.${i & 255}` } }).then((r) => {
        if (r.status === 429) sawLimit();
        return r;
      }),
    );
    await Promise.race([limited, Promise.all(burst)]);
    // While that client is being refused: hits still answer, and another client's miss passes.
    const [hitOriginal, hitThumb, otherClient] = await Promise.all([raw(edge + original), raw(edge + thumb), raw(`${edge}/${fid}.jpg?w=240&h=240`, { from: '127.0.0.2' })]);
    const results = await Promise.all(burst);

    const statuses = results.map((r) => r.status);
    const ok = statuses.filter((s) => s === 200).length;
    const refused = results.filter((r) => r.status === 429);
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(refused.length).toBeGreaterThan(0);
    expect(ok).toBeGreaterThanOrEqual(51); // the burst of 50 after the first, answered at once
    for (const r of refused) expect(r.headers['retry-after']).toBe('1');
    for (const r of results.filter((x) => x.status === 200)) expect(r.headers['retry-after']).toBeUndefined();
    expect([hitOriginal.status, hitOriginal.headers['x-edge-cache']]).toEqual([200, 'HIT']);
    expect([hitThumb.status, hitThumb.headers['x-edge-cache']]).toEqual([200, 'HIT']);
    expect([otherClient.status, otherClient.headers['x-edge-cache']]).toEqual([200, 'MISS']);
    // No refused request reached an origin: they saw exactly the misses that were let through.
    expect((await env.originRequests({ clientOnly: true })) - before).toBe(ok + 1);
    expect(readFileSync(env.errorLog, 'utf8')).toMatch(/limiting requests.*zone "ugcfs_variant_misses", client: 127\.0\.0\.1/);

    // Retry-After means it: a second later a refused variant is served (the 429 was not cached).
    await new Promise((r) => setTimeout(r, 1100));
    const retried = await raw(edge + paths[statuses.indexOf(429)]!);
    expect([retried.status, retried.headers['x-edge-cache']]).toEqual([200, 'MISS']);
  });
});
