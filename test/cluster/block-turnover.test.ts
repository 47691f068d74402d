// Blocks filling under a concurrent write load: every write still lands, and the client
// tells the name server about a block that refused writes once, not once per refused write
// (a 100-fid assign batch can queue far more writes for a block than fit in what is left of
// it, and each report cost the name server about a millisecond of CPU). Real processes;
// counted on the name server's ugcfs_http_requests_total.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { NS_ROUTES } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';

let c: Cluster;
beforeAll(async () => {
  // 1 MiB blocks hold ~50 writes of 20 KB; an assign batch is 100 fids of one block.
  c = await startCluster({ dataservers: 3, replicas: 2, racks: [''], blockSize: 1024 * 1024 });
});
afterAll(async () => {
  await c?.stop();
});

const reports = async () => (await scrapeMetrics(c.nameserver.url)).value('ugcfs_http_requests_total', { route: NS_ROUTES.blockWriteFailed }, { sum: true });

describe('block turnover', () => {
  it('lands every write and reports each block that refused writes at most once', async () => {
    const client = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
    const before = await reports();
    const blocks = new Set<number>();
    let next = 0;
    const body = Buffer.alloc(20 * 1024, 7);
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 400) {
          next++;
          const w = await client.write(body);
          blocks.add(decodeFid(w.fid).block);
        }
      }),
    );
    const reported = (await reports()) - before;
    expect(blocks.size).toBeGreaterThanOrEqual(7); // 400 x 20 KB over blocks of 1 MiB
    // Blocks did fill under queued writes (so there was something to report) ...
    expect(reported).toBeGreaterThan(0);
    // ... and no block was reported twice: a block that refused writes also took some.
    expect(reported).toBeLessThanOrEqual(blocks.size);
    await client.close?.();
  });
});
