// The disk tier: variants survive an origin crash, the directory stays within --cache-bytes,
// nothing half-written is ever served, and a file deleted while an origin was down is not
// served from that origin's disk when it comes back.
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metric } from '../helpers/metrics-scrape.ts';
import { corpus, http, scratchDir, startEnv, startOrigin, stopAll, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';

let env: Env;
beforeAll(async () => {
  env = await startEnv();
});
afterAll(() => stopAll(env));

function dirBytes(dir: string): number {
  return readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);
}

describe('disk cache', () => {
  it('serves variants from disk after a crash and stays within its byte bound', async () => {
    const dir = scratchDir(env);
    // No memory tier, so every repeat read has to come from disk.
    const args = ['--cache-dir', dir, '--cache-bytes', '60000', '--memory-cache-bytes', '0'];
    let o = await startOrigin(env, args);
    const f = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    const first = await http(`${o.url}/${f.fid}?w=120`);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await http(`${o.url}/${f.fid}?w=120`);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body.equals(first.body)).toBe(true);
    expect(await metric(o.url, 'ugcfs_cache_lookups_total', { tier: 'disk', result: 'hit' })).toBeGreaterThan(0);

    // Many variants: the directory never holds more than the bound.
    for (let w = 200; w < 420; w += 20) {
      expect((await http(`${o.url}/${f.fid}?w=${w}`)).status).toBe(200);
      expect(dirBytes(dir)).toBeLessThanOrEqual(60000);
    }
    const newest = await http(`${o.url}/${f.fid}?w=400`);
    expect(newest.headers['x-cache']).toBe('HIT');

    // A crash leaves a stray temp file; the restarted origin ignores and removes it.
    await o.kill('SIGKILL');
    writeFileSync(join(dir, '.tmp-deadbeef0000'), 'half written');
    writeFileSync(join(dir, 'not-a-cache-file'), 'unrelated');
    o = await startOrigin(env, args);
    const again = await http(`${o.url}/${f.fid}?w=400`);
    expect(again.status).toBe(200);
    expect(again.headers['x-cache']).toBe('HIT');
    expect(again.body.equals(newest.body)).toBe(true);
    expect(await metric(o.url, 'ugcfs_resizes_total', {}, { sum: true })).toBe(0);
    expect(readdirSync(dir).some((n) => n.startsWith('.tmp-'))).toBe(false);
    await o.kill('SIGKILL');
  });

  it('does not serve a file deleted while the origin was down', async () => {
    const dir = scratchDir(env);
    const args = ['--cache-dir', dir, '--memory-cache-bytes', '0'];
    let o = await startOrigin(env, args);
    const f = await upload(o.url, corpus('photos/GreenMeadow.jpg'));
    expect((await http(`${o.url}/${f.fid}?w=150`)).status).toBe(200);
    await o.kill('SIGKILL');
    const other = await startOrigin(env);
    expect((await http(`${other.url}/${f.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH })).status).toBe(204);
    o = await startOrigin(env, args);
    const r = await http(`${o.url}/${f.fid}?w=150`);
    expect(r.status).toBe(404);
    expect(readdirSync(dir).length).toBe(0);
  });
});
