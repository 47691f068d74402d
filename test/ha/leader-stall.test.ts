// A leader that stalls past its lease (SIGSTOP: a long GC pause, a frozen VM) and wakes up
// after another has taken over changes nothing: requests that reached it while it was
// stopped are refused, its old epoch is refused by every data server, and it steps down to
// standby. Real etcd (three members), two name servers, three data servers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, HEADERS, NS_ROUTES } from '../../src/wire/protocol.ts';
import { etcdUsable } from '../helpers/etcd.ts';
import { startHaCluster, type HaCluster } from '../helpers/ha-cluster.ts';
import { waitFor } from '../helpers/proc.ts';

const LEASE_MS = 2000;

describe.skipIf(etcdUsable())('a leader stopped past its lease', () => {
  let ha: HaCluster;
  beforeAll(async () => {
    ha = await startHaCluster({ nameservers: 2, dataservers: 3, leaseMs: LEASE_MS });
  }, 180_000);
  afterAll(() => ha?.stop());

  it('ugcfs status and the status page show each name server with its role and epoch', async () => {
    const li = await ha.leaderIndex();
    const epoch = (await ha.leaderOf(li))!.epoch;
    const out = await ha.cli(['status', '--json']);
    expect(out.code, out.stderr).toBe(0);
    const s = JSON.parse(out.stdout) as { nameservers: Array<{ url: string; role: string; epoch: number; alive: boolean }> };
    expect(s.nameservers.sort((a, b) => (a.url < b.url ? -1 : 1))).toEqual(
      ha.nsUrls.map((url, i) => ({ url, role: i === li ? 'leader' : 'standby', epoch, alive: true })).sort((a, b) => (a.url < b.url ? -1 : 1)),
    );
    // The page, from either name server, lists both: the group as etcd knows it.
    for (const url of ha.nsUrls) {
      const page = await (await fetch(`${url}/`, { headers: { 'x-ugcfs-secret': ha.secret } })).text();
      for (const [i, u] of ha.nsUrls.entries()) {
        expect(page).toMatch(new RegExp(`<tr data-nameserver="${u}"><td class="url">${u}</td><td><span class="pill[^"]*">${i === li ? 'leader' : 'standby'}</span></td><td class="num">${epoch}</td><td>up</td>`));
      }
    }
  }, 60_000);

  it('wakes up to find another leading: it writes nothing, its commands are refused, and it steps down', async () => {
    const kept = await ha.client.write(Buffer.from('written before the stall'), { mime: 'text/plain' });
    const old = await ha.leaderIndex();
    const other = 1 - old;
    const oldEpoch = (await ha.leaderOf(old))!.epoch;
    const stalled = ha.nameservers[old]!;
    stalled.child.kill('SIGSTOP');
    try {
      const next = await waitFor('the standby to lead', async () => {
        const s = await ha.leaderOf(other);
        return s?.role === 'leader' ? s : undefined;
      }, 30_000, 50);
      expect(next.epoch).toBeGreaterThan(oldEpoch);
      const after = await ha.client.write(Buffer.from('written under the new leader'), { mime: 'text/plain' });
      // Every data server has heard the new epoch (from the new leader's heartbeat answers).
      await waitFor('every data server at the new epoch', async () => {
        const h = await Promise.all(ha.dataservers.map(async (d) => ((await (await fetch(`${d.url}/healthz`)).json()) as { epoch?: number }).epoch));
        return h.every((e) => e === next.epoch);
      }, 20_000);

      // Requests that reach the stalled leader wait in its socket backlog and are handled the
      // moment it wakes, before any of its timers: each must be refused, none applied.
      const url = ha.nsUrls[old]!;
      const auth = { secret: ha.secret, timeoutMs: 30_000 };
      const waiting = [
        callRaw(url + NS_ROUTES.assign, { ...auth, method: 'POST', body: {} }),
        callRaw(`${url}${NS_ROUTES.legacy}`, { ...auth, method: 'PUT', body: { path: '/stalled/a.jpg', fid: after.fid } }),
        callRaw(url + NS_ROUTES.deletes, { ...auth, method: 'POST', body: { fid: kept.fid } }),
      ];
      await new Promise((r) => setTimeout(r, 300));
      stalled.child.kill('SIGCONT');
      const answers = await Promise.all(waiting);
      for (const a of answers) {
        expect(a.status, a.body.toString()).toBe(421);
        const body = JSON.parse(a.body.toString()) as { error: { code: string; leader: string | null } };
        expect(body.error.code).toBe('UGCFS_ERR_NOT_LEADER');
      }
      // Nothing it was asked took effect: the leader has no such mapping, and the file lives.
      const legacy = await callRaw(`${ha.nsUrls[other]}${NS_ROUTES.legacy}?path=${encodeURIComponent('/stalled/a.jpg')}`, { secret: ha.secret });
      expect(legacy.status).toBe(404);
      expect((await ha.client.read(kept.fid)).data.toString()).toBe('written before the stall');
      const feed = JSON.parse((await callRaw(`${ha.nsUrls[other]}${NS_ROUTES.deletes}?after=0`, { secret: ha.secret })).body.toString()) as { deletes: Array<{ fid: string }> };
      expect(feed.deletes.map((d) => d.fid)).not.toContain(kept.fid);

      // A command it might still have had in flight, stamped with its epoch, is refused by
      // every data server and does nothing.
      for (const d of ha.dataservers) {
        const r = await callRaw(d.url + DS_ROUTES.blockReadonly.replace(':id', '1'), { method: 'POST', body: { readonly: true }, secret: ha.secret, headers: { [HEADERS.epoch]: String(oldEpoch) } });
        expect(r.status).toBe(409);
        expect(JSON.parse(r.body.toString()).error.code).toBe('UGCFS_ERR_STALE_EPOCH');
      }

      // It has stepped down: a standby that names the new leader, having counted the step-down.
      const status = await waitFor('the woken name server to stand by', async () => {
        const s = await ha.leaderOf(old);
        return s?.role === 'standby' && s.leader === ha.nsUrls[other] ? s : undefined;
      }, 20_000);
      expect(status.epoch).toBe(next.epoch);
      const metrics = await ha.metricsOf(old);
      expect(metrics).toMatch(/^ugcfs_nameserver_step_downs_total\{role="nameserver"\} 1$/m);
      expect(metrics).toMatch(/^ugcfs_nameserver_leader\{role="nameserver"\} 0$/m);
      expect((await ha.leaderOf(other))?.role).toBe('leader');
      // And the group still writes.
      const last = await ha.client.write(Buffer.from('after the wake-up'), { mime: 'text/plain' });
      expect((await ha.client.read(last.fid)).data.toString()).toBe('after the wake-up');
    } finally {
      stalled.child.kill('SIGCONT');
    }
  }, 300_000);
});
