// Flood control on real origins over a real cluster (docs/SECURITY.md, "Floods, quotas and
// signatures"): a distinct-variant flood from one address gets 429s while another client's
// uploads still answer 201 and the origin's memory stays bounded; the per-file variant cap;
// the hit-path memo under junk URLs; upload quotas across an origin restart; per-token
// upload rate; signed URLs with exp=.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUrl } from '../../origin/url-signature.ts';
import { corpus, http, rawRequest, startEnv, startOrigin, stopAll, upload, type Env, type Res } from './origin-env.ts';
import type { Proc } from '../helpers/proc.ts';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
}, 120_000);
afterAll(() => stopAll(env));

/** Resident memory of a process, bytes (Linux /proc). */
function rssOf(p: Proc): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${p.child.pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

/** One request from a chosen loopback address (another client as the origin sees it). */
function from(address: string, url: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Res> {
  const u = new URL(url);
  return rawRequest(u.origin, u.pathname + u.search, { ...o, localAddress: address });
}

/** Uploads need a token (no origin trusts a loopback address). */
const TOKEN = 'tok-floods-' + randomBytes(16).toString('hex');
const TOKENS = { UGCFS_UPLOAD_TOKENS: TOKEN };

const health = async (p: Proc) => (await http(`${p.url}/healthz`)).json();

describe('a distinct-variant flood from one client', () => {
  const token = 'tok-flood-' + randomBytes(16).toString('hex');
  let o: Proc;
  let fid: string;
  const made: number[] = [];
  beforeAll(async () => {
    o = await startOrigin(env, ['--variant-rate', '2', '--variant-burst', '10', '--resize-concurrency', '1', '--resize-queue', '2', '--max-variants-per-file', '0'], { UGCFS_UPLOAD_TOKENS: token });
    fid = (await upload(o.url, corpus('photos/Aqua.jpg'), token)).fid;
  }, 60_000);

  it('gets 429 with Retry-After, while uploads from another client still answer 201 and memory stays bounded', async () => {
    const rssBefore = rssOf(o);
    const statuses = new Map<number, number>();
    let retryAfter: string | undefined;
    let next = 0;
    const widths = Array.from({ length: 300 }, (_, i) => 40 + i);
    const flood = Promise.all(Array.from({ length: 8 }, async () => {
      while (next < widths.length) {
        const w = widths[next++]!;
        const r = await from('127.0.0.1', `${o.url}/${fid}?w=${w}`);
        if (r.status === 200) made.push(w);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        if (r.status === 429) {
          retryAfter = r.headers['retry-after'];
          expect(r.json().error.code).toBe('UGCFS_ERR_RATE_LIMITED');
        }
      }
    }));
    // Another client uploads while the flood runs: its decodes do not queue behind variants.
    const uploads: number[] = [];
    const uploader = (async () => {
      for (let i = 0; i < 6; i++) {
        const img = await sharp({ create: { width: 300 + i, height: 200, channels: 3, background: { r: i * 40, g: 90, b: 30 } } }).jpeg().toBuffer();
        const r = await from('127.0.0.2', `${o.url}/upload`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'image/jpeg' }, body: img });
        uploads.push(r.status);
      }
    })();
    await Promise.all([flood, uploader]);
    console.log(`flood: statuses ${JSON.stringify(Object.fromEntries(statuses))}, uploads ${uploads.join(' ')}, rss ${Math.round(rssBefore / 2 ** 20)} -> ${Math.round(rssOf(o) / 2 ** 20)} MiB`);
    expect(statuses.get(429) ?? 0).toBeGreaterThan(200);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(uploads).toEqual([201, 201, 201, 201, 201, 201]);
    // 300 distinct variants asked for, a handful made: nothing grew with the flood.
    expect(rssOf(o) - rssBefore).toBeLessThan(200 * 2 ** 20);
  });

  it('never limits hits or originals, and other addresses keep their own budget', async () => {
    // Variants made before the bucket ran dry are hits, however often; originals are never limited.
    expect(made.length).toBeGreaterThan(0);
    for (let i = 0; i < 30; i++) expect((await from('127.0.0.1', `${o.url}/${fid}?w=${made[i % made.length]}`)).status).toBe(200);
    for (let i = 0; i < 30; i++) expect((await from('127.0.0.1', `${o.url}/${fid}`)).status).toBe(200);
    // Another address has a bucket of its own.
    expect((await from('127.0.0.3', `${o.url}/${fid}?w=999`)).status).toBe(200);
  });
});

describe('--max-variants-per-file', () => {
  it('refuses new variants of a file past the cap, serving presets and what is made', async () => {
    const o = await startOrigin(env, ['--max-variants-per-file', '3', '--presets', '{"thumb":{"w":64,"h":64,"fit":"cover"}}'], TOKENS);
    const f = await upload(o.url, corpus('photos/Aqua.jpg'), TOKEN);
    for (const w of [10, 20, 30]) expect((await http(`${o.url}/${f.fid}?w=${w}`)).status).toBe(200);
    const past = await http(`${o.url}/${f.fid}?w=40`);
    expect([past.status, past.json().error.code]).toEqual([403, 'UGCFS_ERR_TOO_MANY_VARIANTS']);
    expect((await http(`${o.url}/${f.fid}.jpg_40x40.jpg`)).status).toBe(403);
    expect((await http(`${o.url}/${f.fid}?w=20`)).status).toBe(200);
    expect((await http(`${o.url}/${f.fid}?preset=thumb`)).status).toBe(200);
    expect((await http(`${o.url}/${f.fid}`)).status).toBe(200);
    // Another file has a budget of its own.
    const g = await upload(o.url, corpus('photos/Aqua.jpg'), TOKEN);
    expect((await http(`${o.url}/${g.fid}?w=40`)).status).toBe(200);
  });
});

describe('the hit-path memo', () => {
  it('stays bounded under a flood of long and invalid fid-like URLs', async () => {
    const o = await startOrigin(env, [], TOKENS);
    const f = await upload(o.url, corpus('photos/Aqua.jpg'), TOKEN);
    expect((await http(`${o.url}/${f.fid}`)).status).toBe(200);
    const before = (await health(o)).hitPathMemo;
    const junk = (i: number) => (i % 2 === 0 ? `/1${'a'.repeat(3000)}${i}` : `/1-not-a-fid-${i}?w=${i}`);
    for (let i = 0; i < 2000; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => http(o.url + junk(i + j))));
      for (const r of batch) expect(r.status).toBeGreaterThanOrEqual(400);
    }
    const after = (await health(o)).hitPathMemo;
    console.log(`hit-path memo: ${before} -> ${after} entries after 2000 junk URLs`);
    expect(after).toBeLessThanOrEqual(before + 1);
    expect((await http(`${o.url}/${f.fid}`)).status).toBe(200);
  });
});

describe('upload tokens', () => {
  const tokA = 'tok-quota-a-' + randomBytes(16).toString('hex');
  const tokB = 'tok-quota-b-' + randomBytes(16).toString('hex');
  const aqua = corpus('photos/Aqua.jpg');
  const auth = (t: string) => ({ authorization: `Bearer ${t}`, 'content-type': 'image/jpeg' });

  it('are refused past --quota-bytes, across origins and restarts, and a delete gives bytes back', async () => {
    // What an upload stores (metadata stripped), learnt with a token of its own.
    const probe = await startOrigin(env, [], TOKENS);
    const size = (await upload(probe.url, aqua, TOKEN)).size;
    await probe.kill('SIGKILL');
    const args = ['--quota-bytes', String(Math.floor(size * 1.5))];
    const tokens = { UGCFS_UPLOAD_TOKENS: `${tokA},${tokB}` };
    let o = await startOrigin(env, args, tokens);
    const first = await http(`${o.url}/upload`, { method: 'POST', headers: auth(tokA), body: aqua });
    expect(first.status).toBe(201);
    const second = await http(`${o.url}/upload`, { method: 'POST', headers: auth(tokA), body: aqua });
    expect([second.status, second.json().error.code]).toEqual([403, 'UGCFS_ERR_QUOTA_EXCEEDED']);
    expect((await http(`${o.url}/upload`, { method: 'POST', headers: auth(tokB), body: aqua })).status).toBe(201);
    // The count is the name server's: a restarted origin, or another one, sees it.
    await o.kill('SIGKILL');
    o = await startOrigin(env, args, tokens);
    const other = await startOrigin(env, args, tokens);
    expect((await http(`${o.url}/upload`, { method: 'POST', headers: auth(tokA), body: aqua })).status).toBe(403);
    expect((await http(`${other.url}/upload`, { method: 'POST', headers: auth(tokA), body: aqua })).status).toBe(403);
    expect((await http(`${o.url}/${first.json().files[0].fid}`, { method: 'DELETE', headers: auth(tokA) })).status).toBe(204);
    expect((await http(`${other.url}/upload`, { method: 'POST', headers: auth(tokA), body: aqua })).status).toBe(201);
  });

  it('are rate-limited per token (--upload-rate, --upload-burst)', async () => {
    const o = await startOrigin(env, ['--upload-rate', '0.2', '--upload-burst', '2'], { UGCFS_UPLOAD_TOKENS: `${tokA},${tokB}` });
    const statuses: number[] = [];
    let limited: Res | undefined;
    for (let i = 0; i < 3; i++) {
      const r = await http(`${o.url}/upload`, { method: 'POST', headers: auth(tokA), body: aqua });
      statuses.push(r.status);
      if (r.status === 429) limited = r;
    }
    expect(statuses).toEqual([201, 201, 429]);
    expect(limited!.json().error.code).toBe('UGCFS_ERR_RATE_LIMITED');
    expect(Number(limited!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await http(`${o.url}/upload`, { method: 'POST', headers: auth(tokB), body: aqua })).status).toBe(201);
  });
});

describe('signed URLs with exp=', () => {
  it('serves before exp and refuses after it, the signature covering exp', async () => {
    const keys = ['sign-' + randomBytes(24).toString('hex')];
    const o = await startOrigin(env, [], { ...TOKENS, UGCFS_SIGNING_KEYS: keys.join(',') });
    const f = await upload(o.url, corpus('photos/Aqua.jpg'), TOKEN);
    const now = Math.floor(Date.now() / 1000);
    const live = signUrl(keys, `/${f.fid}?w=100`, { exp: now + 600 });
    expect(live).toContain(`exp=${now + 600}`);
    expect((await http(o.url + live)).status).toBe(200);
    const expired = await http(o.url + signUrl(keys, `/${f.fid}?w=100`, { exp: now - 5 }));
    expect([expired.status, expired.json().error.code]).toEqual([403, 'UGCFS_ERR_BAD_SIGNATURE']);
    expect(expired.json().error.message).toMatch(/expired/);
    // Moving exp later breaks the signature.
    const stretched = await http(o.url + live.replace(`exp=${now + 600}`, `exp=${now + 99999}`));
    expect([stretched.status, stretched.json().error.message]).toEqual([403, 'the variant URL signature does not match']);
    expect((await http(`${o.url}/${f.fid}?w=100&exp=${now + 600}`)).status).toBe(403);
  });
});
