// Losing data servers loses nothing: after a SIGKILL every file stays readable at once, the
// dead server shows in `status`, its blocks are re-replicated by themselves, and a second
// loss afterwards still loses nothing. A server that comes back with stale copies is
// reconciled: deletes it missed are applied, extra copies removed.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

let c: Cluster;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 256 * 1024, deadAfterMs: 1200, repairDelayMs: 300 });
  for (let i = 0; i < 150; i++) {
    const data = randomBytes(2000 + ((i * 131) % 6000));
    const w = await c.client.write(data, { mime: 'application/octet-stream' });
    files.set(w.fid, data);
  }
});
afterAll(async () => {
  await c?.stop();
});

async function readAll(): Promise<number> {
  let ok = 0;
  for (const [fid, data] of files) {
    const r = await c.client.read(fid);
    expect(r.data.equals(data)).toBe(true);
    ok++;
  }
  return ok;
}

async function copiesOn(i: number): Promise<number[]> {
  const res = await fetch(`${c.dataservers[i]!.url}/blocks`, { headers: { 'x-ugcfs-secret': c.secret } });
  return ((await res.json()) as Array<{ id: number }>).map((b) => b.id);
}

describe('automatic repair (3 data servers, replicas 2)', () => {
  it('keeps every file readable at once after a SIGKILL, and heals by itself', async () => {
    const victimId = c.dsIds[0]!;
    const before = await c.status();
    expect(before.dataservers.find((d) => d.id === victimId)!.blocks).toBeGreaterThan(0);
    await c.killDataserver(0);
    // at once: the name server still thinks the victim is alive; reads fail over
    expect(await readAll()).toBe(files.size);

    const dead = await c.waitFor((s) => s.dataservers.some((d) => d.id === victimId && !d.alive), 'victim marked dead');
    expect(dead.dataservers.filter((d) => d.alive)).toHaveLength(2);
    const cli = await c.cli(['status', '--json']);
    const shown = JSON.parse(cli.stdout) as { dataservers: Array<{ id: string; alive: boolean }> };
    expect(shown.dataservers.find((d) => d.id === victimId)!.alive).toBe(false);

    const healed = await c.waitFor((s) => s.underReplicatedBlocks === 0 && s.dataservers.find((d) => d.id === victimId)!.blocks === 0, 'repair done', 60_000);
    expect(healed.underReplicatedBlocks).toBe(0);
    for (const fid of [...files.keys()].filter((_, i) => i % 10 === 0)) {
      const st = await c.client.stat(fid);
      expect(st.replicas.sort()).toEqual(['ds-2', 'ds-3']);
    }
    expect(await readAll()).toBe(files.size);
    const w = await c.client.write(randomBytes(3000));
    expect(w.replicas.map((r) => r.id).sort()).toEqual(['ds-2', 'ds-3']);
    files.set(w.fid, (await c.client.read(w.fid)).data);
  });

  it('a second loss afterwards still loses nothing; deletes made meanwhile stick', async () => {
    await c.killDataserver(1);
    const doomed = [...files.keys()][3]!;
    await c.client.delete(doomed);
    files.delete(doomed);
    await expect(c.client.read(doomed)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    expect(await readAll()).toBe(files.size);
    const s = await c.waitFor((x) => x.dataservers.filter((d) => d.alive).length === 1, 'second victim dead');
    expect(s.underReplicatedBlocks).toBeGreaterThan(0); // one copy left, nowhere to copy to
    expect(await readAll()).toBe(files.size);

    // Both come back with stale copies: the cluster reconciles to exactly 2 copies per
    // block, applies the missed delete, and the deleted file never reappears.
    await c.restartDataserver(0);
    await c.restartDataserver(1);
    await c.waitForAlive();
    const healed = await c.waitFor((x) => x.underReplicatedBlocks === 0, 'healed after returns', 60_000);
    await waitFor('exactly 2 copies of every block', async () => {
      const all = [...(await copiesOn(0)), ...(await copiesOn(1)), ...(await copiesOn(2))];
      return all.length === healed.blocks * 2;
    }, 30_000);
    await expect(c.client.read(doomed)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${c.dataservers[i]!.url}/needles/${doomed}`, { headers: { 'x-ugcfs-secret': c.secret } });
      expect(res.status).toBe(404);
    }
    expect(await readAll()).toBe(files.size);
  });
});

describe('missed deletes', () => {
  it('a server back before repair gets the deletes it missed before serving again', async () => {
    // Slow repair on this cluster: restart the name server is not needed; use a fresh cluster.
    const d = await startCluster({ dataservers: 2, racks: ['a', 'b'], replicas: 2, blockSize: 256 * 1024, deadAfterMs: 1000, repairDelayMs: 60_000 });
    try {
      const fids: string[] = [];
      for (let i = 0; i < 10; i++) fids.push((await d.client.write(randomBytes(1000 + i))).fid);
      await d.killDataserver(1);
      await d.waitFor((s) => s.dataservers.some((x) => x.id === 'ds-2' && !x.alive), 'ds-2 dead');
      await d.client.delete(fids[0]!);
      await d.client.delete(fids[1]!);
      await d.restartDataserver(1);
      await d.waitForAlive();
      const url = d.dataservers[1]!.url;
      // replayed on ds-2 itself, not only hidden
      await waitFor('missed deletes replayed', async () => {
        const res = await fetch(`${url}/needles/${fids[0]}`, { headers: { 'x-ugcfs-secret': d.secret } });
        const res2 = await fetch(`${url}/needles/${fids[1]}`, { headers: { 'x-ugcfs-secret': d.secret } });
        return res.status === 404 && res2.status === 404;
      }, 20_000);
      for (const fid of fids.slice(0, 2)) await expect(d.client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
      for (const fid of fids.slice(2)) expect((await d.client.stat(fid)).replicas.sort()).toEqual(['ds-1', 'ds-2']);
    } finally {
      await d.stop();
    }
  });
});

describe('start-up grace', () => {
  it('a restarted name server repairs nothing before its grace period ends, then heals', async () => {
    const d = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 256 * 1024, repairDelayMs: 0, startupGraceMs: 4000 });
    try {
      // One fid per assign, so the files spread over the open blocks and ds-3 holds some.
      const spread = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret, assignBatch: 1 });
      let onDs3 = 0;
      for (let i = 0; i < 200 && (i < 20 || onDs3 < 3); i++) if ((await spread.write(randomBytes(3000))).replicas.some((r) => r.id === 'ds-3')) onDs3++;
      expect(onDs3).toBeGreaterThanOrEqual(3);
      await d.killNameserver();
      await d.killDataserver(2);
      const ns = await d.restartNameserver();
      const healed = await d.waitFor((s) => s.underReplicatedBlocks === 0 && s.dataservers.some((x) => x.id === 'ds-3' && !x.alive), 'healed after grace', 60_000);
      expect(healed.dataservers.find((x) => x.id === 'ds-3')!.blocks).toBe(0);
      const logs = ns.lines.flatMap((l) => {
        try {
          return [JSON.parse(l) as { msg?: string; time?: number }];
        } catch {
          return [];
        }
      });
      const listening = logs.find((l) => l.msg === 'listening') as { startedAt: number };
      const repairs = logs.filter((l) => l.msg === 'block re-replicated');
      expect(repairs.length).toBeGreaterThan(0);
      for (const r of repairs) expect(r.time!).toBeGreaterThanOrEqual(listening.startedAt + 4000);
    } finally {
      await d.stop();
    }
  });
});
