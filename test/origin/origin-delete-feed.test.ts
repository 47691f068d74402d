// Deletes made around an origin reach it through the name server's delete feed: a file
// deleted through another origin (not in --peers) disappears from this origin's memory and
// disk tiers — original and every variant — within the 5 s of docs/INTERFACE.md, and
// nothing else is dropped. When the feed has a gap (the name server lost its state, so
// deletes may be unknown) the origin drops its memory tier and re-checks disk entries
// against storage.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { DiskCache } from '../../origin/disk-cache.ts';
import { DS_ROUTES } from '../../src/wire/protocol.ts';
import { waitFor } from '../helpers/proc.ts';
import { corpus, http, scratchDir, startEnv, startOrigin, stopAll, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let env: Env;
beforeAll(async () => {
  env = await startEnv();
}, 90_000);
afterAll(() => stopAll(env));

/** Disk-cache files holding any variant of `fid` (they share the fid's name prefix). */
function diskFilesOf(dir: string, fid: string): string[] {
  const prefix = DiskCache.fileName(fid, '').split('-')[0]!;
  return readdirSync(dir).filter((n) => n.startsWith(`${prefix}-`));
}

describe('delete feed', () => {
  it('a delete through another origin purges the original and every variant from memory and disk within 5 s; other files stay cached', async () => {
    const dir = scratchDir(env);
    const a = await startOrigin(env, ['--cache-dir', dir]);
    const b = await startOrigin(env);
    const gone = await upload(a.url, corpus('photos/FreshFlower.jpg'));
    const kept = await upload(a.url, corpus('photos/FreshFlower.jpg'));
    for (const fid of [gone.fid, kept.fid]) {
      for (const q of ['', '?w=80', '?w=120&fmt=webp']) expect((await http(`${a.url}/${fid}${q}`)).status).toBe(200);
    }
    expect((await http(`${a.url}/${gone.fid}?w=80`)).headers['x-cache']).toBe('HIT');
    expect(diskFilesOf(dir, gone.fid)).toHaveLength(2);

    expect((await http(`${b.url}/${gone.fid}`, { method: 'DELETE', headers: UPLOAD_AUTH })).status).toBe(204);
    // gone from every tier within the 5 s (checked as soon as it may be, not after all of them)
    const statuses = async () => Promise.all(['', '?w=80', '?w=120&fmt=webp'].map(async (q) => (await http(`${a.url}/${gone.fid}${q}`)).status));
    await waitFor('the delete to reach this origin', async () => diskFilesOf(dir, gone.fid).length === 0 && (await statuses()).every((st) => st === 404), 5000, 100).catch(() => undefined);
    expect(await statuses()).toEqual([404, 404, 404]);
    expect(diskFilesOf(dir, gone.fid)).toEqual([]);

    // the purge is targeted: the other file's entries are still hits
    expect(diskFilesOf(dir, kept.fid)).toHaveLength(2);
    for (const q of ['', '?w=80']) expect((await http(`${a.url}/${kept.fid}${q}`)).headers['x-cache'], q).toBe('HIT');
  }, 60_000);

  it('a gap in the feed (name server state lost) drops cached files that storage no longer has, and keeps serving the rest', async () => {
    const { cluster } = env;
    const dir = scratchDir(env);
    const o = await startOrigin(env, ['--cache-dir', dir, '--delete-feed-interval-ms', '200']);
    const gone = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    const kept = await upload(o.url, corpus('photos/FreshFlower.jpg'));
    for (const fid of [gone.fid, kept.fid]) {
      for (const q of ['', '?w=64']) expect((await http(`${o.url}/${fid}${q}`)).status).toBe(200);
    }
    // a recorded delete moves the feed (and so this origin's cursor) past zero
    const other = await cluster.client.write(Buffer.from('not an image'));
    await cluster.client.delete(other.fid);
    await sleep(1500);

    // `gone` is deleted on every replica behind the name server's back: the feed never hears of it
    for (const ds of cluster.dataservers) {
      const res = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', gone.fid), { method: 'DELETE', secret: cluster.secret, timeoutMs: 5000 });
      expect(res.status).toBeLessThan(300);
    }
    expect((await http(`${o.url}/${gone.fid}`)).headers['x-cache'], 'still cached before the gap').toBe('HIT');

    await cluster.killNameserver();
    rmSync(join(cluster.dir, 'ns'), { recursive: true, force: true });
    await cluster.restartNameserver(['--adopt-blocks']);
    await cluster.waitFor((s) => s.blocks > 0 && s.underReplicatedBlocks === 0 && s.dataservers.length > 0 && s.dataservers.every((d) => d.alive), 'blocks adopted');
    await sleep(1500);

    for (const q of ['', '?w=64']) expect((await http(`${o.url}/${gone.fid}${q}`)).status, q).toBe(404);
    expect(diskFilesOf(dir, gone.fid)).toEqual([]);
    for (const q of ['', '?w=64']) {
      const r = await http(`${o.url}/${kept.fid}${q}`);
      expect(r.status, q).toBe(200);
      expect(r.headers['x-cache'], `${q}: the memory tier was dropped`).toBe(q === '' ? 'MISS' : 'HIT');
    }
  }, 90_000);
});
