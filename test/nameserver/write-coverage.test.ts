// The writable-block pool is refilled by count. A data server that joins (or gets its disk
// back) after the pool is full must still be given writes before any open block fills up:
// with one writable block wanted and two servers holding it, a third server joining takes
// a block of its own on the next assigns. Real name server, real data servers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

describe('a server that joins a full writable pool gets writes', () => {
  let cluster: Cluster;
  let client: ClusterClient;

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''], nameserverArgs: ['--writable-blocks', '1'] });
    client = new ClusterClient({ nameserver: cluster.nameserver.url, secret: cluster.secret, assignBatch: 1 });
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
  });

  it('writes land on the newcomer while the first block still has room', async () => {
    const first = await client.write(Buffer.alloc(1000, 1));
    expect(first.replicas.map((r) => r.id).sort()).toEqual(['ds-1', 'ds-2']);
    await cluster.addDataserver();
    await waitFor('ds-3 alive', async () => (await cluster.status()).dataservers.filter((d) => d.alive).length === 3, 20_000);
    const seen = new Set<string>();
    await waitFor('a write stored on ds-3', async () => {
      const w = await client.write(Buffer.alloc(1000, 2));
      for (const r of w.replicas) seen.add(r.id);
      return seen.has('ds-3');
    }, 20_000);
    const s = await cluster.status();
    // the one block wanted, and one more to take the newcomer in: no block filled, so no more
    expect(s.blocks).toBe(2);
  });
});
