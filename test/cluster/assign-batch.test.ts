// The cluster client fetches fids ahead in batches of up to 100, sized to about 2 MiB of
// writes at the size of the write asking: a batch must fit in what is left of a nearly
// full block (the name server stops assigning a block at 95 %). Counted on the name
// server's ugcfs_assigns_total, with real processes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { metric } from '../helpers/metrics-scrape.ts';

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ dataservers: 2, replicas: 2, racks: [''], blockSize: 64 * 1024 * 1024 });
});
afterAll(async () => {
  await c?.stop();
});

const assigned = () => metric(c.nameserver.url, 'ugcfs_assigns_total');

/** fids the name server handed out while a fresh client wrote `n` files of `size` bytes, one after another */
async function fidsFor(n: number, size: number): Promise<number> {
  const client = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
  const before = await assigned();
  for (let i = 0; i < n; i++) await client.write(Buffer.alloc(size, i));
  return (await assigned()) - before;
}

describe('assign batches', () => {
  it('are 100 fids for small files, about 2 MiB worth for larger ones, and one fid from 2 MiB up', async () => {
    expect(await fidsFor(3, 1000)).toBe(100);
    expect(await fidsFor(3, 200 * 1024)).toBe(10); // floor(2 MiB / 200 KiB)
    expect(await fidsFor(12, 200 * 1024)).toBe(20); // a second batch after ten
    expect(await fidsFor(2, 2 * 1024 * 1024 + 1)).toBe(2);
  });
});
