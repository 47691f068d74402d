// SIGKILL the name server in the middle of a write burst and start it again: every write
// that was acknowledged reads back byte-exact, and no file key (hence no fid) is ever
// issued twice — key ranges are leased (persisted) before use, tiny here so many leases
// roll over during the burst.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, NS_ROUTES, type AssignResult } from '../../src/wire/protocol.ts';
import type { BlockRecord } from '../../nameserver/block-map.ts';
import { jsonSublevel, openStateDb } from '../../nameserver/state-db.ts';
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

describe('deletes while a lost state is being rebuilt', () => {
  it('a server that joins an adopted block late gets the deletes made before it reported', async () => {
    const d = await startCluster({ dataservers: 2, racks: ['', ''], replicas: 2, blockSize: 1024 * 1024, startupGraceMs: 1000 });
    try {
      const keep = randomBytes(1500);
      const gone = randomBytes(1700);
      const wKeep = await d.client.write(keep);
      const wGone = await d.client.write(gone);
      expect(decodeFid(wGone.fid).block).toBe(decodeFid(wKeep.fid).block);
      await d.killNameserver();
      rmSync(join(d.dir, 'ns'), { recursive: true, force: true });
      await d.killDataserver(1);
      await d.restartNameserver(['--adopt-blocks']);
      // only ds-1 reports: the adopted block has one known copy
      await d.waitFor((s) => s.dataservers.some((x) => x.id === 'ds-1' && x.alive && x.blocks > 0), 'ds-1 adopted');
      const fresh = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret });
      await fresh.delete(wGone.fid);

      await d.restartDataserver(1);
      await d.waitFor((s) => s.dataservers.every((x) => x.alive && x.blocks > 0), 'ds-2 joined the adopted block');
      // ds-2's copy owes the delete: replayed to it, and no read is sent there before that
      const onDs2 = d.dataservers[1]!.url + DS_ROUTES.needle.replace(':fid', wGone.fid);
      await waitFor('the delete replayed on ds-2', async () => (await callRaw(onDs2, { secret: d.secret })).status === 404, 20_000, 200);
      for (let i = 0; i < 5; i++) {
        const reader = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret });
        await expect(reader.read(wGone.fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
        expect((await reader.read(wKeep.fid)).data.equals(keep)).toBe(true);
      }
    } finally {
      await d.stop();
    }
  });
});

describe('deletes acknowledged before the state was lost', () => {
  it('are not brought back by adopting: the copy that missed one gets it from the copy that has the tombstone (verify --repair after the grace)', async () => {
    const d = await startCluster({ dataservers: 2, racks: ['', ''], replicas: 2, blockSize: 1024 * 1024, startupGraceMs: 1000 });
    try {
      const keep = randomBytes(1500);
      const wKeep = await d.client.write(keep);
      const wGone = await d.client.write(randomBytes(1700));
      expect(decodeFid(wGone.fid).block).toBe(decodeFid(wKeep.fid).block);
      // ds-2 misses the delete: the old state records it as owed to ds-2 ...
      await d.killDataserver(1);
      await d.waitFor((s) => s.dataservers.some((x) => x.id === 'ds-2' && !x.alive), 'ds-2 dead');
      await d.client.delete(wGone.fid);
      // ... and then the old state is lost, and that record with it
      await d.killNameserver();
      rmSync(join(d.dir, 'ns'), { recursive: true, force: true });
      await d.restartDataserver(1);
      const onDs2 = () => d.dataservers[1]!.url + DS_ROUTES.needle.replace(':fid', wGone.fid);
      expect((await callRaw(onDs2(), { secret: d.secret })).status).toBe(200);
      await d.restartNameserver(['--adopt-blocks']);
      await d.waitFor((s) => s.dataservers.length === 2 && s.dataservers.every((x) => x.alive && x.blocks > 0), 'both copies adopted');
      // ds-1's tombstone wins: ds-2 gets the delete, and the file stays deleted everywhere
      await waitFor('the delete reaches ds-2', async () => (await callRaw(onDs2(), { secret: d.secret })).status === 404, 30_000, 200);
      const s = await d.status();
      expect(s.operations.some((o) => o.kind === 'verify' && o.details?.auto === true)).toBe(true);
      const reader = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret });
      for (let i = 0; i < 4; i++) await expect(reader.read(wGone.fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
      expect((await reader.read(wKeep.fid)).data.equals(keep)).toBe(true);
      await reader.close();
    } finally {
      await d.stop();
    }
  });
});

describe('a name server killed while creating a block', () => {
  it('abandons the half-created block at restart: its copies are deleted and it is not counted as lost', async () => {
    // The state a SIGKILL leaves between persisting a new block and every replica creating
    // it: the record says `creating`, one server has the block, the other never heard of it.
    const id = 1_000_000;
    await c.killNameserver('SIGKILL');
    const db = await openStateDb(join(c.dir, 'ns', 'state'));
    await jsonSublevel<BlockRecord>(db, 'blocks').put(String(id), { id, replication: 2, state: 'creating', replicas: [c.dsIds[0]!, c.dsIds[1]!], createdAt: Date.now() - 60_000 });
    await db.close();
    const onFirst = c.dataservers[0]!.url + DS_ROUTES.block.replace(':id', String(id));
    await callJson(onFirst, { method: 'POST', body: { replicas: [] }, secret: c.secret });
    const hasCopy = async () => (await callRaw(c.dataservers[0]!.url + DS_ROUTES.blockData.replace(':id', String(id)), { secret: c.secret })).status === 200;
    expect(await hasCopy()).toBe(true);

    await c.restartNameserver();
    await c.waitForAlive();
    await waitFor('the half-created copy deleted', async () => !(await hasCopy()), 20_000, 100);
    const s = await c.waitFor((x) => x.underReplicatedBlocks === 0, 'nothing under-replicated');
    expect(s.underReplicatedBlocks).toBe(0);
    await expect(callJson(c.nameserver.url + NS_ROUTES.block.replace(':id', String(id)), { secret: c.secret })).rejects.toMatchObject({ code: 'UGCFS_ERR_BLOCK_NOT_FOUND' });
  });
});

describe('losing the name server\'s state', () => {
  it('a fresh state refuses the old data servers as foreign; --adopt-blocks takes the cluster back and new blocks never reuse an id', async () => {
    const d = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 64 * 1024, startupGraceMs: 1500 });
    try {
      const files = new Map<string, Buffer>();
      for (let i = 0; i < 60; i++) {
        const data = randomBytes(2000 + i * 10);
        files.set((await d.client.write(data)).fid, data);
      }
      const blocksBefore = new Set([...files.keys()].map((f) => decodeFid(f).block));
      expect(blocksBefore.size).toBeGreaterThan(1);
      await d.killNameserver();
      rmSync(join(d.dir, 'ns'), { recursive: true, force: true });

      // A fresh state is a new cluster: the old data servers carry the old cluster id, so
      // they are foreign to it — refused, never written to, never told to delete anything.
      await d.restartNameserver();
      const refused = await d.waitFor((x) => (x.foreignDataservers ?? []).length === 3, 'the old data servers refused as foreign');
      expect(refused.dataservers).toHaveLength(0);
      expect(refused.blocks).toBe(0);
      expect(refused.foreignDataservers!.every((f) => f.cluster !== undefined && f.cluster !== refused.cluster && f.blocks > 0)).toBe(true);
      const [someFid] = files.keys();
      // A client without cached block locations has to ask the name server, which knows nothing.
      const uncached = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret });
      await expect(uncached.read(someFid!)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
      await expect(uncached.write(randomBytes(100))).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' });

      // Recovery: adopt what the data servers hold.
      await d.restartNameserver(['--adopt-blocks']);
      await d.waitForAlive();
      // (the count includes open blocks that never got a file)
      const s = await d.waitFor((x) => x.blocks >= blocksBefore.size && x.underReplicatedBlocks === 0 && x.dataservers.every((ds) => ds.alive), 'blocks adopted');
      expect(s.dataservers.reduce((n, ds) => n + ds.blocks, 0)).toBe(2 * s.blocks);
      for (const [fid, data] of files) expect((await d.client.read(fid)).data.equals(data)).toBe(true);
      for (const fid of [...files.keys()].slice(0, 5)) expect((await d.client.stat(fid)).replicas).toHaveLength(2);
      // new writes go to new blocks, never one of the adopted ids
      const fresh = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret });
      const w = await waitFor('writes after the grace', async () => fresh.write(randomBytes(500)).catch(() => undefined), 30_000, 200);
      expect(blocksBefore.has(decodeFid(w.fid).block)).toBe(false);
      expect(decodeFid(w.fid).block).toBeGreaterThan(Math.max(...blocksBefore));
      expect((await fresh.read(w.fid)).data.length).toBe(500);
    } finally {
      await d.stop();
    }
  });
});
