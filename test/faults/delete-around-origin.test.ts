// DESIGN.md: "After a delete returns, no origin serves the file or any variant within 5 s."
// A delete made around the origin — `ugcfs rm`, or any ClusterClient — removes the file
// from every data server without telling the origin directly; an origin holding the
// original in its memory cache learns of it from the name server's delete feed, which it
// polls every second (found by the crash matrix when origins did not yet watch the feed).
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { start, type Proc } from '../helpers/proc.ts';
import { sleep } from './fault-kit.ts';

describe('a delete made around the origin', () => {
  let cluster: Cluster;
  let origin: Proc;

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''] });
    origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: cluster.secret } });
  }, 90_000);

  afterAll(async () => {
    await origin?.kill();
    await cluster?.stop();
  });

  it('`ugcfs rm` of a file the origin has cached: the origin stops serving it within 5 s', async () => {
    const png = await sharp({ create: { width: 6, height: 6, channels: 3, background: { r: 40, g: 80, b: 120 } } }).png().toBuffer();
    const up = await request(`${origin.url}/upload`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: png });
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
});
