// SIGKILL the name server in the middle of a write burst and start it again: every write
// that was acknowledged reads back byte-exact, and no file key (hence no fid) is ever
// issued twice — key ranges are leased (persisted) before use, tiny here so many leases
// roll over during the burst.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/file-id.ts';
import { callJson } from '../../src/http-client.ts';
import { NS_ROUTES, type AssignResult } from '../../src/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

let c: Cluster;

beforeAll(async () => {
  c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 128 * 1024, nameserverArgs: ['--key-lease', '7'], startupGraceMs: 2000 });
});
afterAll(async () => {
  await c?.stop();
});

describe('name server crash during a write burst', () => {
  it('loses no acknowledged write and never issues a key twice', async () => {
    const acked = new Map<string, Buffer>();
    let failures = 0;
    let stop = false;
    const writer = async () => {
      while (!stop) {
        const data = randomBytes(500 + Math.floor(Math.random() * 3000));
        try {
          const w = await c.client.write(data);
          acked.set(w.fid, data);
        } catch {
          failures++;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    // Bare assigns too: data servers refuse a duplicate key in a block they share, which
    // would hide a reissued key from the write path; every fid the name server hands out counts.
    const issued: string[] = [];
    const assigner = async () => {
      while (!stop) {
        try {
          issued.push((await callJson<AssignResult>(c.nameserver.url + NS_ROUTES.assign, { method: 'POST', body: {}, secret: c.secret, timeoutMs: 2000 })).fid);
        } catch {
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const writers = [...Array.from({ length: 6 }, writer), ...Array.from({ length: 4 }, assigner)];

    await waitFor('first writes', () => acked.size >= 100, 60_000, 10);
    await c.killNameserver('SIGKILL');
    const atKill = acked.size;
    await waitFor('writes failing while the name server is down', () => failures > 0, 10_000, 10);
    await c.restartNameserver();
    await waitFor('writes after the restart', () => acked.size >= atKill + 100, 90_000, 20);
    await c.killNameserver('SIGKILL');
    await new Promise((r) => setTimeout(r, 100));
    await c.restartNameserver();
    await waitFor('writes after the second restart', () => acked.size >= atKill + 200, 90_000, 20);
    stop = true;
    await Promise.all(writers);

    const all = [...acked.keys(), ...issued];
    const keys = new Set(all.map((fid) => decodeFid(fid).key));
    expect(keys.size).toBe(all.length);
    expect(issued.length).toBeGreaterThan(100);
    expect(failures).toBeGreaterThan(0);

    await c.waitForAlive();
    for (const [fid, data] of acked) {
      const r = await c.client.read(fid);
      expect(r.data.equals(data)).toBe(true);
    }
    const s = await c.waitFor((x) => x.underReplicatedBlocks === 0, 'no under-replicated blocks');
    expect(s.dataservers.filter((d) => d.alive)).toHaveLength(3);
  });

  it('rebuilds the block map from reports after a restart', async () => {
    const w = await c.client.write(randomBytes(1234));
    const st = await c.client.stat(w.fid);
    const gone = await c.client.write(randomBytes(99));
    await c.client.delete(gone.fid);
    const feed = await c.client.deletesSince();
    const before = await c.status();
    await c.restartNameserver();
    // the delete feed and its cursors survive the restart
    const page = await c.client.deletesSince(feed.seq - 1);
    expect(page).toMatchObject({ complete: true, seq: feed.seq });
    expect(page.deletes.map((d) => d.fid)).toEqual([gone.fid]);
    await c.waitForAlive();
    const counts = (s: { dataservers: Array<{ blocks: number }> }) => s.dataservers.map((d) => d.blocks).join(',');
    const after = await c.waitFor((s) => counts(s) === counts(before) && s.underReplicatedBlocks === 0, 'map rebuilt from reports');
    expect(after.blocks).toBeGreaterThanOrEqual(before.blocks);
    expect((await c.client.stat(w.fid)).replicas.sort()).toEqual(st.replicas.sort());
  });
});
