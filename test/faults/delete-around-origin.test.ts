// docs/INTERFACE.md: at most 5 s after a delete returns, no origin serves the file or any variant.
// A delete made around the origin — `ugcfs rm`, or any ClusterClient — removes the file
// from every data server without telling the origin directly; an origin holding the
// original in its memory cache learns of it from the name server's delete feed, which it
// polls every second (found by the crash matrix when origins did not yet watch the feed).
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { start, waitFor, type Proc } from '../helpers/proc.ts';
import { sleep } from './fault-kit.ts';

describe('a delete made around the origin', () => {
  let cluster: Cluster;
  let origin: Proc;

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''] });
    origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_UPLOAD_TOKENS: cluster.uploadToken } });
  }, 90_000);

  afterAll(async () => {
    await origin?.kill();
    await cluster?.stop();
  });

  it('`ugcfs rm` of a file the origin has cached: the origin stops serving it within 5 s', async () => {
    const png = await sharp({ create: { width: 6, height: 6, channels: 3, background: { r: 40, g: 80, b: 120 } } }).png().toBuffer();
    const up = await request(`${origin.url}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${cluster.uploadToken}` }, body: png });
    const { fid } = JSON.parse(await up.body.text()).files[0] as { fid: string };
    const warm = await request(`${origin.url}/${fid}`);
    await warm.body.dump();
    expect(warm.statusCode).toBe(200);

    const rm = await cluster.cli(['rm', fid]);
    expect(rm.code, rm.stderr).toBe(0);
    await expect(cluster.client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });

    await sleep(5500);
    const after = await request(`${origin.url}/${fid}`);
    await after.body.dump();
    expect(after.statusCode).toBe(404);
  });

  it('after the name server lost its state, the new delete feed is not mistaken for the old one', async () => {
    // The origin's cursor sits at some sequence N of the old feed. A name server restarted
    // on an empty state numbers deletes from 1 again; once it passes N, numbers alone would
    // make the origin skip deletes 1..N. The feed id changes, so the origin drops its caches.
    const png = (v: number) => sharp({ create: { width: 6, height: 6, channels: 3, background: { r: v, g: 80, b: 120 } } }).png().toBuffer();
    const upload = async (v: number) => {
      const up = await request(`${origin.url}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${cluster.uploadToken}` }, body: await png(v) });
      return (JSON.parse(await up.body.text()).files[0] as { fid: string }).fid;
    };
    const fids = [];
    for (let i = 0; i < 6; i++) fids.push(await upload(10 + i));
    const cached = fids[0]!;
    const warm = await request(`${origin.url}/${cached}`);
    await warm.body.dump();
    expect(warm.statusCode).toBe(200);
    for (const f of fids.slice(4)) await cluster.client.delete(f); // the old feed's cursor moves to 2+
    await sleep(1500);

    await cluster.killNameserver();
    rmSync(join(cluster.dir, 'ns'), { recursive: true, force: true });
    await cluster.restartNameserver(['--adopt-blocks']);
    await cluster.waitFor((s) => s.dataservers.length === 2 && s.dataservers.every((d) => d.alive) && s.blocks > 0, 'blocks adopted');
    // deletes 1..4 of the new feed: the cached file first
    for (const f of fids.slice(0, 4)) await waitFor(`delete ${f}`, () => cluster.client.delete(f).then(() => true), 20_000, 200);

    const gone = await waitFor('the origin stops serving the deleted file', async () => {
      const r = await request(`${origin.url}/${cached}`);
      await r.body.dump();
      return r.statusCode === 404;
    }, 20_000, 250).catch(async (err: Error) => {
      const stat = await cluster.client.read(cached).then(() => 'readable', (e: { code?: string }) => e.code);
      console.log(`delete feed test: ${err.message}; through the client the file is ${stat}; origin log:\n${origin.lines.filter((l) => /feed|purge|delete/i.test(l)).slice(-20).join('\n')}`);
      return false;
    });
    expect(gone).toBe(true);
    expect(origin.lines.some((l) => l.includes('delete feed has a gap'))).toBe(true);
  });
});
