// Who may upload and delete, signed and strict variant URLs, Accept negotiation and the
// bounded resize queue — each on a real origin over a real cluster.
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signUrl } from '../../origin/url-signature.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { corpus, http, startEnv, startOrigin, stopAll, storedBytes, upload, UPLOAD_TOKEN, type Env } from './origin-env.ts';
import { run, type Proc } from '../helpers/proc.ts';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => stopAll(env));

describe('upload tokens and deletes', () => {
  const tokA = 'tok-a-' + randomBytes(16).toString('hex');
  const tokB = 'tok-b-' + randomBytes(16).toString('hex');
  const admin = 'adm-' + randomBytes(16).toString('hex');
  let o: Proc;
  beforeAll(async () => {
    o = await startOrigin(env, [], { UGCFS_UPLOAD_TOKENS: `${tokA},${tokB}`, UGCFS_ADMIN_TOKEN: admin });
  });
  const auth = (t: string) => ({ authorization: `Bearer ${t}` });

  it('refuses uploads without a valid token', async () => {
    for (const headers of [{}, auth('nope'), { authorization: tokA }]) {
      const r = await http(`${o.url}/upload`, { method: 'POST', headers, body: corpus('exif/f1-exif.jpg') });
      expect(r.status).toBe(401);
      expect(r.json().error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
    }
  });

  it('lets only the uploader or the admin delete, and a deleted file is gone with its variants', async () => {
    const a = await upload(o.url, corpus('exif/f1-exif.jpg'), tokA);
    expect((await http(`${o.url}/${a.fid}?w=20`)).status).toBe(200);
    const other = await http(`${o.url}/${a.fid}`, { method: 'DELETE', headers: auth(tokB) });
    expect([other.status, other.json().error.code]).toEqual([403, 'UGCFS_ERR_FORBIDDEN']);
    expect((await http(`${o.url}/${a.fid}`, { method: 'DELETE' })).status).toBe(401);
    expect((await http(`${o.url}/${a.fid}`)).status).toBe(200);
    const own = await http(`${o.url}/${a.fid}.jpg`, { method: 'DELETE', headers: auth(tokA) });
    expect(own.status).toBe(204);
    for (const p of [`/${a.fid}`, `/${a.fid}?w=20`, `/${a.fid}.jpg_20x20.jpg`]) expect((await http(o.url + p)).status, p).toBe(404);
    expect((await http(`${o.url}/${a.fid}`, { method: 'DELETE', headers: auth(tokA) })).status).toBe(404);

    const b = await upload(o.url, corpus('exif/f2-exif.jpg'), tokB);
    expect((await http(`${o.url}/${b.fid}`, { method: 'DELETE', headers: auth(admin) })).status).toBe(204);
    expect((await http(`${o.url}/${b.fid}`)).status).toBe(404);
  });

  it('never writes a token into its logs', async () => {
    await upload(o.url, corpus('exif/f3-exif.jpg'), tokA);
    await http(`${o.url}/upload`, { method: 'POST', headers: auth('wrong-' + tokB), body: Buffer.from('x') });
    const logs = o.lines.join('\n');
    expect(logs).toContain('uploaded');
    for (const secret of [tokA, tokB, admin]) expect(logs).not.toContain(secret);
  });
});

describe('no trust in the loopback address', () => {
  it('refuses a loopback upload or delete without a token, stores nothing, and lets the uploader delete', async () => {
    const o = await startOrigin(env);
    const f = await upload(o.url, corpus('exif/f4-exif.jpg'));
    const before = await storedBytes(env);
    const anon = await http(`${o.url}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: corpus('exif/f6-exif.jpg') });
    expect([anon.status, anon.json().error.code]).toEqual([401, 'UGCFS_ERR_UNAUTHORIZED']);
    expect(await storedBytes(env)).toBe(before);
    const del = await http(`${o.url}/${f.fid}`, { method: 'DELETE' });
    expect([del.status, del.json().error.code]).toEqual([401, 'UGCFS_ERR_UNAUTHORIZED']);
    expect((await http(`${o.url}/${f.fid}`)).status).toBe(200);
    expect((await http(`${o.url}/${f.fid}`, { method: 'DELETE', headers: { authorization: `Bearer ${UPLOAD_TOKEN}` } })).status).toBe(204);
    expect((await http(`${o.url}/${f.fid}`)).status).toBe(404);
  });

  it('will not start with an upload token under 32 characters', async () => {
    const r = await run(['origin', '--nameserver', env.cluster.nameserver.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: env.cluster.secret, UGCFS_UPLOAD_TOKENS: 'x'.repeat(31) }, timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--upload-tokens/);
    expect(r.stdout + r.stderr).not.toMatch(/"msg":"listening"/);
  });
});

describe('shutdown', () => {
  it('exits 0 on SIGTERM', async () => {
    const o = await startOrigin(env);
    await upload(o.url, corpus('exif/f5-exif.jpg'));
    expect(await o.kill('SIGTERM')).toBe(0);
  });
});

describe('signed variant URLs', () => {
  it('requires a signature from any configured key for variants, not originals', async () => {
    const keys = ['new-key-' + randomBytes(16).toString('hex'), 'old-key-' + randomBytes(16).toString('hex')];
    const o = await startOrigin(env, [], { UGCFS_SIGNING_KEYS: keys.join(',') });
    const f = await upload(o.url, corpus('photos/Aqua.jpg'));
    expect((await http(`${o.url}/${f.fid}.jpg`)).status).toBe(200);
    const unsigned = await http(`${o.url}/${f.fid}?w=100`);
    expect([unsigned.status, unsigned.json().error.code]).toEqual([403, 'UGCFS_ERR_BAD_SIGNATURE']);
    expect((await http(o.url + signUrl(keys, `/${f.fid}?w=100`))).status).toBe(200);
    expect((await http(o.url + signUrl([keys[1]!], `/${f.fid}.jpg_120x120.jpg`))).status).toBe(200);
    expect((await http(o.url + signUrl(['some-other-key'], `/${f.fid}?w=100`))).status).toBe(403);
    // A signature is bound to its URL.
    const sig = signUrl(keys, `/${f.fid}?w=100`).split('sig=')[1];
    expect((await http(`${o.url}/${f.fid}?w=101&sig=${sig}`)).status).toBe(403);
  });
});

describe('strict mode', () => {
  it('serves only presets and whitelisted sizes', async () => {
    const o = await startOrigin(env, ['--strict', '--allowed-sizes', '200x200,64x', '--presets', '{"tile":{"w":90,"h":90,"fit":"cover"}}']);
    const f = await upload(o.url, corpus('photos/Aqua.jpg'));
    expect((await http(`${o.url}/${f.fid}.jpg_200x200.jpg`)).status).toBe(200);
    expect((await http(`${o.url}/${f.fid}?w=64&fmt=webp`)).status).toBe(200);
    expect((await http(`${o.url}/${f.fid}?preset=tile`)).status).toBe(200);
    expect((await http(`${o.url}/${f.fid}`)).status).toBe(200);
    for (const p of [`/${f.fid}?w=300`, `/${f.fid}.jpg_201x200.jpg`, `/${f.fid}?preset=tile&w=500`]) {
      const r = await http(o.url + p);
      expect([r.status, r.json().error.code], p).toEqual([403, 'UGCFS_ERR_NOT_ALLOWED']);
    }
  });
});

describe('format negotiation', () => {
  it('picks WebP/AVIF from Accept only when configured, and then varies on Accept', async () => {
    const o = await startOrigin(env, ['--negotiate-format']);
    const f = await upload(o.url, corpus('photos/Aqua.jpg'));
    const webp = await http(`${o.url}/${f.fid}?w=100`, { headers: { accept: 'image/webp,*/*' } });
    expect([webp.headers['content-type'], webp.headers.vary]).toEqual(['image/webp', 'Accept']);
    const avif = await http(`${o.url}/${f.fid}?w=100`, { headers: { accept: 'image/avif,image/webp,*/*' } });
    expect([avif.headers['content-type'], (await sharp(avif.body).metadata()).format]).toEqual(['image/avif', 'heif']);
    const plain = await http(`${o.url}/${f.fid}?w=100`, { headers: { accept: '*/*' } });
    expect([plain.headers['content-type'], plain.headers.vary]).toEqual(['image/jpeg', 'Accept']);
    expect(new Set([webp.headers.etag, avif.headers.etag, plain.headers.etag]).size).toBe(3);
    const explicit = await http(`${o.url}/${f.fid}?w=100&fmt=png`, { headers: { accept: 'image/webp' } });
    expect([explicit.headers['content-type'], explicit.headers.vary]).toEqual(['image/png', undefined]);
    const original = await http(`${o.url}/${f.fid}`, { headers: { accept: 'image/webp' } });
    expect([original.headers['content-type'], original.headers.vary]).toEqual(['image/jpeg', undefined]);

    const off = await startOrigin(env);
    const g = await upload(off.url, corpus('photos/Aqua.jpg'));
    const r = await http(`${off.url}/${g.fid}?w=100`, { headers: { accept: 'image/avif,image/webp' } });
    expect([r.headers['content-type'], r.headers.vary]).toEqual(['image/jpeg', undefined]);
  });
});

describe('bounded resize capacity', () => {
  it('answers 503 Busy with Retry-After when slots and queue are full, and recovers', async () => {
    const o = await startOrigin(env, ['--resize-concurrency', '1', '--resize-queue', '1']);
    const f = await upload(o.url, corpus('photos/wood-d.webp')); // 4096x4096: slow to decode
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => http(`${o.url}/${f.fid}?w=${100 + i}&fmt=avif`)));
    const busy = rs.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(rs.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(2);
    for (const r of busy) {
      expect(r.json().error.code).toBe('UGCFS_ERR_BUSY');
      expect(r.headers['retry-after']).toBe('1');
      expect(r.headers['cache-control']).toBe('no-store');
    }
    expect(await metric(o.url, 'ugcfs_resize_rejected_total')).toBe(busy.length);
    expect((await http(`${o.url}/${f.fid}?w=107&fmt=avif`)).status).toBe(200);
  });
});
