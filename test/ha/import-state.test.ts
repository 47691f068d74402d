// `--import-state DIR` moves a single name server's LevelDB state into etcd once: the same
// cluster (its data servers are not refused as foreign), every file and legacy path still
// resolves, ids go on past what the old state leased. Run again it changes nothing; a
// different state is refused (exit 2) rather than merged.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import { startCluster, startRole, type Cluster } from '../helpers/cluster.ts';
import { etcdUsable, startEtcd, type EtcdCluster } from '../helpers/etcd.ts';
import { run, tempDir } from '../helpers/proc.ts';

describe.skipIf(etcdUsable())('--import-state', () => {
  let etcd: EtcdCluster;
  let c: Cluster;
  beforeAll(async () => {
    etcd = await startEtcd({ members: 1 });
    c = await startCluster({ dataservers: 2, replicas: 2 });
  }, 120_000);
  afterAll(async () => {
    await c?.stop();
    await etcd?.stop();
  });

  it('moves a single name server\'s state into etcd once, verified, and the cluster goes on', async () => {
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 30; i++) {
      const data = randomBytes(2000 + i);
      files.set((await c.client.write(data)).fid, data);
    }
    const fids = [...files.keys()];
    await c.client.legacySet('/old/a.jpg', fids[0]!);
    await c.client.legacySet('/old/b.jpg', fids[1]!);
    const gone = fids[2]!;
    await c.client.delete(gone);
    files.delete(gone);
    const cluster = (await c.status()).cluster;
    const highestKey = fids.reduce((m, f) => (decodeFid(f).key > m ? decodeFid(f).key : m), 0n);

    const etcdArgs = ['--etcd', etcd.endpoints.join(','), '--etcd-prefix', '/ugcfs/imported', '--advertise-url', c.nameserver.url];
    const importArgs = [...etcdArgs, '--import-state', join(c.dir, 'ns')];
    await c.restartNameserver(importArgs);
    expect(c.nameserver.lines.some((l) => l.includes('imported and verified the LevelDB state'))).toBe(true);
    await c.waitForAlive();
    const s = await c.status();
    expect(s.cluster).toBe(cluster);
    expect(s.foreignDataservers ?? []).toEqual([]);
    for (const [fid, data] of files) expect((await c.client.read(fid)).data.equals(data)).toBe(true);
    await expect(c.client.read(gone)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    expect(await c.client.legacyGet('/old/a.jpg')).toBe(fids[0]);
    expect(await c.client.legacyGet('/old/b.jpg')).toBe(fids[1]);
    const next = await c.client.write(randomBytes(100));
    expect(decodeFid(next.fid).key).toBeGreaterThan(highestKey);

    // Started again with the flag (every start of the group may carry it): nothing is redone,
    // and what the group wrote since stays.
    await c.client.legacySet('/old/a.jpg', next.fid);
    await c.restartNameserver(importArgs);
    expect(c.nameserver.lines.some((l) => l.includes('this state was imported before'))).toBe(true);
    await c.waitForAlive();
    expect(await c.client.legacyGet('/old/a.jpg')).toBe(next.fid);
    expect((await c.client.read(next.fid)).data.length).toBe(100);

    // Another state is not merged into it: exit 2, one line naming both.
    const other = tempDir('ugcfs-other-ns-');
    try {
      const single = await startRole(['nameserver', '--data', other.dir, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: c.secret } });
      await single.stop();
      const refused = await run(['nameserver', ...etcdArgs, '--port', '0', '--import-state', other.dir], { env: { UGCFS_CLUSTER_SECRET: c.secret }, timeoutMs: 60_000 });
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/--import-state: etcd already holds state s-[0-9a-f]+, imported .*; .* is state s-[0-9a-f]+/);
    } finally {
      other.cleanup();
    }
  }, 300_000);
});
