// The etcd client and store against a real three-member etcd cluster: members killed
// (SIGKILL) and frozen (SIGSTOP) under a client, a watch and a lease keeper. Skipped with a
// printed reason when /usr/bin/etcd is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdClient, EtcdError } from '../../src/clients/etcd-client.ts';
import { EtcdMetadataStore, type WatchEvent } from '../../nameserver/metadata-store/etcd.ts';
import { etcdUsable, startEtcd, type EtcdCluster, type EtcdMember } from '../helpers/etcd.ts';

const reason = etcdUsable();

describe.skipIf(reason)('etcd metadata store on a three-member cluster', () => {
  let etcd: EtcdCluster;
  const closers: Array<() => Promise<void>> = [];
  beforeAll(async () => {
    etcd = await startEtcd({ members: 3 });
  }, 60_000);
  afterAll(async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
    await etcd?.stop();
  });

  /** The raft leader and the followers now (stopping a follower keeps the quorum and the leader). */
  async function rolesNow(): Promise<{ leader: EtcdMember; followers: EtcdMember[] }> {
    const c = new EtcdClient({ endpoints: etcd.endpoints });
    try {
      const st = await Promise.all(etcd.members.map((m) => c.status(m.clientUrl)));
      const leader = etcd.members[st.findIndex((x) => x.leader === x.memberId)];
      if (!leader) throw new Error('no leader');
      return { leader, followers: etcd.members.filter((m) => m !== leader) };
    } finally {
      await c.close();
    }
  }

  const follower = async (): Promise<EtcdMember> => (await rolesNow()).followers[0]!;

  async function store(endpoints: string[], prefix: string, o: { timeoutMs?: number } = {}): Promise<EtcdMetadataStore> {
    const s = await EtcdMetadataStore.open({ endpoints, prefix, watchCheckMs: 300, avoidMs: 3000, ...o });
    closers.push(() => s.close());
    return s;
  }

  const others = (m: EtcdMember) => etcd.endpoints.filter((e) => e !== m.clientUrl);

  it('fails over reads and unsent writes when a member is killed', async () => {
    const victim = await follower();
    const s = await store([victim.clientUrl, ...others(victim)], '/cluster-kill');
    const ns = s.namespace<number>('n');
    await ns.put('a', 1);
    await victim.kill();
    // the connection is refused: the read is retried, and so is the write (it never left)
    expect(await ns.get('a')).toBe(1);
    await ns.put('a', 2);
    expect(await ns.iterator().all()).toEqual([['a', 2]]);
    await victim.restart();
    expect(await ns.get('a')).toBe(2);
  });

  it('leaves a frozen member: reads retry elsewhere, a write sent to it is reported as ambiguous', async () => {
    const victim = await follower();
    const s = await store([victim.clientUrl, ...others(victim)], '/cluster-freeze', { timeoutMs: 800 });
    const ns = s.namespace<number>('n');
    await ns.put('a', 1);
    victim.pause();
    try {
      expect(await ns.get('a')).toBe(1); // timed out on the frozen one, answered by the next
      // the frozen member is avoided for a while: the write goes to a live one
      await ns.put('a', 2);
      // a client that only knows the frozen member: the write may have arrived, so it says so
      const lone = new EtcdClient({ endpoints: [victim.clientUrl], timeoutMs: 500 });
      const err = await lone.put({ key: '/cluster-freeze/n/b', value: '3' }).catch((e: unknown) => e);
      await lone.close();
      expect(err).toBeInstanceOf(EtcdError);
      expect((err as EtcdError).etcd).toMatchObject({ kind: 'timeout', ambiguous: true });
    } finally {
      victim.resume();
    }
    expect(await ns.get('a')).toBe(2);
  });

  it('keeps a watch going across a killed member and a frozen one, missing nothing', async () => {
    const roles = await rolesNow();
    const [f1, f2] = roles.followers as [EtcdMember, EtcdMember];
    const prefix = '/cluster-watch';
    // the watch goes through f1, then (f1 killed) f2, then (f2 frozen) f1 or the leader
    const watcher = await store([f1.clientUrl, f2.clientUrl, roles.leader.clientUrl], prefix);
    const writer = await store([roles.leader.clientUrl], prefix);
    const ns = writer.namespace<number>('w');
    const from = await writer.currentRevision();
    const got: WatchEvent[] = [];
    const reconnects: string[] = [];
    const w = watcher.watch('w/', from, (events) => void got.push(...events), { onReconnect: (_e, ep) => reconnects.push(ep) });
    await w.ready;
    expect(w.endpoint).toBe(f1.clientUrl);
    let n = 0;
    const writeSome = async (k: number) => {
      for (let i = 0; i < k; i++) await ns.put(`k${String(n).padStart(3, '0')}`, n++);
    };
    await writeSome(10);
    await expect.poll(() => got.length, { timeout: 5000 }).toBe(10);

    await f1.kill();
    await writeSome(10);
    await expect.poll(() => got.length, { timeout: 10_000 }).toBe(20);
    expect(reconnects).toEqual([f1.clientUrl]);
    expect(w.endpoint).toBe(f2.clientUrl);
    await f1.restart();

    f2.pause(); // its TCP stream stays open and silent: only the health check notices
    try {
      await writeSome(10);
      await expect.poll(() => got.length, { timeout: 10_000 }).toBe(30);
      expect(reconnects).toEqual([f1.clientUrl, f2.clientUrl]);
    } finally {
      f2.resume();
    }
    expect(got.map((e) => e.value)).toEqual(Array.from({ length: n }, (_, i) => i));
    const revs = got.map((e) => e.revision);
    expect(revs).toEqual([...new Set(revs)].sort((a, b) => a - b));
    await w.close();
  });

  it('keeps a lease alive and the leadership held while a member dies', async () => {
    const victim = await follower();
    const s = await store([victim.clientUrl, ...others(victim)], '/cluster-lease');
    const lease = await s.grantLease(2);
    const c = await s.campaign('ns', { id: 'x' }, lease);
    expect(c.won).toBe(true);
    const keeper = s.keepAlive(lease);
    let lost: string | undefined;
    void keeper.lost.then((why) => (lost = why));
    await victim.kill();
    await new Promise((r) => setTimeout(r, 3000));
    expect(lost).toBeUndefined();
    expect((await s.leader('ns'))?.value).toEqual({ id: 'x' });
    if (c.won) await s.fenced(c.fence).namespace<number>('n').put('still', 1);
    keeper.stop();
    await s.revokeLease(lease);
    await victim.restart();
  });
});
