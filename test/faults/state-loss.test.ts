// "Nothing lost when the power goes", the name-server half: ds-2 holds the older blocks,
// ds-1 the newer ones; ds-1 is down when the name server comes back on an EMPTY state
// directory. Before cluster identities, that fresh state took ds-2 in, reused the ids of
// ds-1's blocks for new writes, and when ds-1 returned told it to delete its copies as
// "extra": acknowledged files gone. Now:
// - without --adopt-blocks the fresh state is a new cluster: both data servers are foreign
//   (refused, shown so in `status`), writes fail instead of landing anywhere, no block file
//   leaves any blocks/ directory, and every acknowledged file still reads back byte-exact;
// - with --adopt-blocks the state takes the cluster id back from the data servers and moves
//   its id sequences past their high-water marks, so new blocks get ids above every old one
//   — even above those only the absent ds-1 holds — and everything reads back.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeClusterFile } from '../../dataserver/cluster-identity.ts';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, type ClusterStatus } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

let c: Cluster;
/** fid -> [bytes, index of the data server holding it] */
const files = new Map<string, [Buffer, number]>();
let oldCluster = '';
let newestOnDs1 = 0;
let oldBlocks = new Set<number>();

const blockFiles = (i: number) => readdirSync(join(c.dir, `ds-${i + 1}`, 'blocks')).filter((f) => f.endsWith('.blk')).sort();
const clusterFile = (i: number) => decodeClusterFile(readFileSync(join(c.dir, `ds-${i + 1}`, 'cluster')));
const alive = (s: ClusterStatus, id: string) => s.dataservers.some((d) => d.id === id && d.alive);

async function writeFiles(n: number, holder: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const data = randomBytes(2500 + ((i * 37) % 1500));
    const w = await c.client.write(data);
    expect(w.replicas.map((r) => r.id)).toEqual([`ds-${holder + 1}`]);
    files.set(w.fid, [data, holder]);
  }
}

/** Reads every acknowledged file from the data server that holds it, around the name server. */
async function readAllDirect(): Promise<void> {
  for (const [fid, [data, holder]] of files) {
    const res = await callRaw(c.dataservers[holder]!.url + DS_ROUTES.needle.replace(':fid', fid), { secret: c.secret });
    expect(res.status, fid).toBe(200);
    expect(res.body.equals(data), fid).toBe(true);
  }
}

beforeAll(async () => {
  c = await startCluster({ dataservers: 2, racks: ['a', 'b'], replicas: 1, blockSize: 64 * 1024, startupGraceMs: 1500, nameserverArgs: ['--key-lease', '50'] });
  // the older blocks on ds-2 only
  await c.killDataserver(0);
  await c.waitFor((s) => !alive(s, 'ds-1'), 'ds-1 dead');
  await writeFiles(40, 1);
  // the newer blocks on ds-1 only
  await c.restartDataserver(0);
  await c.killDataserver(1);
  await c.waitFor((s) => alive(s, 'ds-1') && !alive(s, 'ds-2'), 'ds-1 alive, ds-2 dead');
  await writeFiles(40, 0);
  await c.restartDataserver(1);
  await c.waitForAlive();
  oldBlocks = new Set([...files.keys()].map((f) => decodeFid(f).block));
  newestOnDs1 = Math.max(...[...files].filter(([, [, h]]) => h === 0).map(([f]) => decodeFid(f).block));
  const oldestOnDs1 = Math.min(...[...files].filter(([, [, h]]) => h === 0).map(([f]) => decodeFid(f).block));
  expect(Math.max(...[...files].filter(([, [, h]]) => h === 1).map(([f]) => decodeFid(f).block))).toBeLessThan(oldestOnDs1);
  // ds-2 has heard the name server's lease end, which is past every block ds-1 holds
  await waitFor('ds-2 to learn the lease ends', () => clusterFile(1).blockIds.upTo > BigInt(newestOnDs1), 10_000, 50);
  oldCluster = clusterFile(1).cluster!;
  expect(clusterFile(0).cluster).toBe(oldCluster);
}, 180_000);
afterAll(async () => {
  await c?.stop();
});

describe('a name server restarted on an empty state directory', () => {
  it('without --adopt-blocks: the data servers are foreign, writes fail, no block file is removed, every acknowledged file reads back', async () => {
    await c.killDataserver(0);
    await c.killNameserver();
    rmSync(join(c.dir, 'ns'), { recursive: true, force: true });
    const before = [blockFiles(0), blockFiles(1)];
    expect(before[0]!.length).toBeGreaterThan(1);
    expect(before[1]!.length).toBeGreaterThan(1);

    await c.restartNameserver();
    const s = await c.waitFor((x) => (x.foreignDataservers ?? []).some((f) => f.id === 'ds-2'), 'ds-2 refused as foreign');
    expect(s.cluster).toBeDefined();
    expect(s.cluster).not.toBe(oldCluster);
    expect(s.dataservers).toHaveLength(0);
    // writes find no data server of this cluster: refused, never placed on the old ones
    const fresh = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret, writeAttempts: 2 });
    for (let i = 0; i < 3; i++) await expect(fresh.write(randomBytes(1000))).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' });
    await fresh.close();

    await c.restartDataserver(0);
    const both = await c.waitFor((x) => (x.foreignDataservers ?? []).length === 2, 'ds-1 refused as foreign too');
    expect(both.foreignDataservers!.map((f) => [f.id, f.cluster])).toEqual([['ds-1', oldCluster], ['ds-2', oldCluster]]);
    // many heartbeats later, still nothing taken from them
    await new Promise((r) => setTimeout(r, 1500));
    expect([blockFiles(0), blockFiles(1)]).toEqual(before);
    await readAllDirect();

    const cli = await c.cli(['status', '--json']);
    expect(cli.code).toBe(0);
    const shown = JSON.parse(cli.stdout) as { cluster: string; dataservers: unknown[]; foreignDataservers: Array<{ id: string; cluster: string; blocks: number; reason: string }> };
    expect(shown.cluster).toBe(s.cluster);
    expect(shown.dataservers).toHaveLength(0);
    expect(shown.foreignDataservers.map((f) => f.id)).toEqual(['ds-1', 'ds-2']);
    expect(shown.foreignDataservers.every((f) => f.cluster === oldCluster && f.blocks > 0)).toBe(true);
    const human = await c.cli(['status']);
    expect(human.stdout).toContain('FOREIGN data servers (2)');
    // each data server said so, once
    for (const ds of c.dataservers) {
      const said = ds.lines.filter((l) => l.includes(`belongs to cluster ${s.cluster}, this data server to ${oldCluster}: refusing its commands; blocks kept`));
      expect(said).toHaveLength(1);
    }
    // and the files' ids are still theirs: the cluster file never changed hands
    expect(clusterFile(0).cluster).toBe(oldCluster);
    expect(clusterFile(1).cluster).toBe(oldCluster);
  });

  it('with --adopt-blocks: the cluster comes back, new blocks get ids above every old one (even the absent server\'s), everything reads back', async () => {
    await c.killDataserver(0); // ds-1, holder of the newest blocks, is away while adopting
    const before = [blockFiles(0), blockFiles(1)];
    await c.restartNameserver(['--adopt-blocks']);
    const s = await c.waitFor((x) => alive(x, 'ds-2') && x.cluster === oldCluster, 'ds-2 adopted into the old cluster');
    expect(s.foreignDataservers ?? []).toHaveLength(0);
    const fresh = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
    const w = await waitFor('writes after the start-up grace', async () => fresh.write(randomBytes(700)).catch(() => undefined), 30_000, 200);
    const newBlock = decodeFid(w.fid).block;
    expect(newBlock).toBeGreaterThan(newestOnDs1);
    expect(oldBlocks.has(newBlock)).toBe(false);

    await c.restartDataserver(0);
    await c.waitFor((x) => alive(x, 'ds-1') && alive(x, 'ds-2') && x.blocks >= oldBlocks.size + 1, 'ds-1 back, its blocks adopted');
    const reader = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
    for (const [fid, [data]] of files) expect((await reader.read(fid)).data.equals(data)).toBe(true);
    expect((await reader.read(w.fid)).data.length).toBe(700);
    // nothing left any blocks/ directory
    const after = [blockFiles(0), blockFiles(1)];
    for (const i of [0, 1]) expect(after[i]).toEqual(expect.arrayContaining(before[i]!));
    await Promise.all([fresh.close(), reader.close()]);
  });
});
