// An acknowledged delete must stay deleted even when a repair copies the block while the
// delete is on the wire. Found by the crash matrix (a deleted file came back, held only by
// the copy a repair had made): a client locates the block, its DELETE to the surviving
// replica is held up on the network, and meanwhile the name server declares the other
// replica dead and copies the block from the survivor to a third server. The copy predates
// the tombstone, the client never knew about the new replica, and the name server was told
// of no delete while the block was busy, so nothing ever deletes the file on the copy.
// Made deterministic with the TCP proxy: the DELETE is held 6 s in the survivor's proxy
// while later traffic (the repair's pull) passes at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { payload, seededRandom, sleep } from './fault-kit.ts';
import { startProxiedCluster, type ProxiedCluster } from './proxied-cluster.ts';

describe('a delete racing a repair copy', () => {
  let pc: ProxiedCluster;

  beforeAll(async () => {
    pc = await startProxiedCluster({ dataservers: 3, replicas: 2, clientTimeoutMs: 15_000 });
  }, 90_000);

  afterAll(async () => {
    await pc?.stop();
  });

  it('a DELETE held on the wire while the block is re-replicated does not leave the file on the new copy', async () => {
    const rnd = seededRandom(99);
    const w = await pc.client.write(payload(rnd, 5000));
    const [a, b] = w.replicas.map((r) => pc.cluster.dsIds.indexOf(r.id));
    const c = [0, 1, 2].find((i) => i !== a && i !== b)!;

    await pc.cluster.killDataserver(b!);
    pc.dsProxies[a!]!.set({ delayMs: 6000 });
    const deleting = pc.client.delete(w.fid);
    // the DELETE's bytes are already held in the proxy; traffic after it passes at once
    await sleep(300);
    pc.dsProxies[a!]!.set({ delayMs: 0 });

    // the name server notices the loss and copies the block from the survivor to the third server
    await pc.cluster.waitFor((s) => s.underReplicatedBlocks === 0 && s.dataservers.some((d) => d.id === pc.cluster.dsIds[b!] && !d.alive), 'block re-replicated', 30_000);
    expect(await pc.holds(c, w.fid), 'the repair copy was made before the delete landed').toBe(true);

    await deleting; // acknowledged
    expect(await pc.holds(a!, w.fid)).toBe(false);
    // give the name server every chance to replay what it was told
    await sleep(1500);
    expect(await pc.holds(c, w.fid), `an acknowledged delete left the file on ${pc.cluster.dsIds[c]} (the repair copy)`).toBe(false);
    await expect(pc.client.read(w.fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
  });
});
