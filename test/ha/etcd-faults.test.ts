// The name-server group when etcd fails under it. Quorum lost (two of three members
// SIGKILLed): writes are refused with 503 UGCFS_ERR_NO_QUORUM, reads go on; quorum back,
// writes resume by themselves. A name server cut off from etcd (the suite's TCP proxy
// between it and every member) steps down and the other leads.
import { createHash, randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdUsable, startEtcd, type EtcdCluster } from '../helpers/etcd.ts';
import { startHaCluster, type HaCluster } from '../helpers/ha-cluster.ts';
import { waitFor } from '../helpers/proc.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';
import { http, upload } from '../origin/origin-env.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const png = () => sharp(randomBytes(8 * 8 * 3), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();

describe.skipIf(etcdUsable())('etcd quorum lost under a name-server group', () => {
  let ha: HaCluster;
  beforeAll(async () => {
    ha = await startHaCluster({ nameservers: 2, dataservers: 3, origin: true, leaseMs: 2000 });
  }, 180_000);
  afterAll(() => ha?.stop());

  it('refuses writes with 503 UGCFS_ERR_NO_QUORUM while reads go on, and writes again by itself once quorum is back', async () => {
    const origin = ha.origin!.url;
    const files = new Map<string, string>();
    for (let i = 0; i < 20; i++) {
      const f = await upload(origin, await png(), ha.uploadToken);
      files.set(f.fid, f.sha256);
    }
    const [a, b] = [ha.etcd.members[1]!, ha.etcd.members[2]!];
    await a.kill();
    await b.kill();
    try {
      // Uploads may go on for a moment on fids assigned ahead; then every one is refused.
      const refused = await waitFor('an upload refused for want of quorum', async () => {
        const r = await http(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${ha.uploadToken}` }, body: await png() });
        if (r.status === 201) return undefined;
        return r;
      }, 60_000, 50);
      expect(refused.status).toBe(503);
      expect(refused.json().error.code).toBe('UGCFS_ERR_NO_QUORUM');
      // The name servers say so too, leader-only calls and all.
      for (const url of ha.nsUrls) {
        const r = await waitFor('the name server to report no quorum', async () => {
          const res = await fetch(`${url}/assign`, { method: 'POST', headers: { 'x-ugcfs-secret': ha.secret, 'content-type': 'application/json' }, body: '{}' });
          const body = (await res.json()) as { error?: { code: string } };
          return body.error?.code === 'UGCFS_ERR_NO_QUORUM' ? res.status : undefined;
        }, 30_000, 200);
        expect(r).toBe(503);
      }
      // Reads go on: every stored file, through the origin, byte-exact.
      for (const [fid, want] of files) {
        const r = await http(`${origin}/${fid}.png`);
        expect(r.status, fid).toBe(200);
        expect(sha(r.body)).toBe(want);
      }
    } finally {
      await Promise.all([a.restart(), b.restart()]);
    }
    // Nobody is asked to do anything: a leader is elected and uploads pass again.
    const back = await waitFor('uploads accepted again', async () => {
      const r = await http(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${ha.uploadToken}` }, body: await png() });
      return r.status === 201 ? (r.json().files[0] as { fid: string; sha256: string }) : undefined;
    }, 60_000, 200);
    const again = await http(`${origin}/${back.fid}.png`);
    expect(sha(again.body)).toBe(back.sha256);
    expect(await ha.leaderIndex()).toBeGreaterThanOrEqual(0);
  }, 300_000);
});

describe.skipIf(etcdUsable())('a name server cut off from etcd', () => {
  let etcd: EtcdCluster;
  let ha: HaCluster;
  const proxies: TcpProxy[] = [];
  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
    // Name server 0 reaches every member only through a proxy of its own.
    for (const m of etcd.members) proxies.push(await startTcpProxy(Number(new URL(m.clientUrl).port)));
    ha = await startHaCluster({ etcd, nameservers: 2, dataservers: 3, leaseMs: 2000, etcdEndpointsFor: (i, e) => (i === 0 ? proxies.map((p) => p.url) : e.endpoints) });
  }, 180_000);
  afterAll(async () => {
    await ha?.stop();
    for (const p of proxies) await p.close();
    await etcd?.stop();
  });

  it('steps down when it leads, and the other leads', async () => {
    // Make name server 0 the leader: while 1 leads, stop it gracefully (it resigns) and start it again.
    if ((await ha.leaderIndex()) === 1) {
      await ha.nameservers[1]!.stop();
      await waitFor('name server 0 to lead', async () => (await ha.leaderOf(0))?.role === 'leader', 30_000);
      await ha.restartNameserver(1);
      await waitFor('name server 1 standing by', async () => (await ha.leaderOf(1))?.role === 'standby', 30_000);
    }
    const before = await ha.client.write(Buffer.from('before the cut'), { mime: 'text/plain' });
    const oldEpoch = (await ha.leaderOf(0))!.epoch;
    // Silence, not resets: the worst case, where only timeouts tell.
    for (const p of proxies) p.set({ mode: 'blackhole' });
    try {
      const t0 = Date.now();
      const now = await waitFor('name server 1 to lead', async () => {
        const s = await ha.leaderOf(1);
        return s?.role === 'leader' ? s : undefined;
      }, 30_000, 50);
      expect(now.epoch).toBeGreaterThan(oldEpoch);
      console.log(`cut off at ${t0}: the other leads after ${Date.now() - t0} ms`);
      // The cut-off one no longer claims to lead (it answers over HTTP, which still works).
      const cut = await waitFor('name server 0 to step down', async () => {
        const s = await ha.leaderOf(0);
        return s && s.role !== 'leader' ? s : undefined;
      }, 10_000);
      expect(cut.role).toBe('standby');
      const after = await ha.client.write(Buffer.from('after the cut'), { mime: 'text/plain' });
      expect((await ha.client.read(after.fid)).data.toString()).toBe('after the cut');
      expect((await ha.client.read(before.fid)).data.toString()).toBe('before the cut');
    } finally {
      for (const p of proxies) p.set({ mode: 'pass' });
    }
    // Healed, it follows the leader again as a standby.
    await waitFor('name server 0 back as a standby of 1', async () => {
      const s = await ha.leaderOf(0);
      return s?.role === 'standby' && s.leader === ha.nsUrls[1];
    }, 30_000);
  }, 300_000);
});
