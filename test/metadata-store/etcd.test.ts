// The etcd metadata store on a real single-member etcd: the conformance suite (with pages of
// 3 keys, so iteration crosses pages), then what only etcd has: fencing, watch, leases and
// campaigns. Skipped with a printed reason when /usr/bin/etcd is missing.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdClient } from '../../src/clients/etcd-client.ts';
import { metadataStoreSuite } from '../../nameserver/metadata-store/conformance.ts';
import { EtcdMetadataStore, type WatchEvent } from '../../nameserver/metadata-store/etcd.ts';
import { isCompacted, isNotLeader } from '../../nameserver/metadata-store/errors.ts';
import { etcdUsable, startEtcd, type EtcdCluster } from '../helpers/etcd.ts';

const reason = etcdUsable();
let etcd: EtcdCluster | undefined;

beforeAll(async () => {
  if (!reason) etcd = await startEtcd();
}, 60_000);
afterAll(async () => {
  await etcd?.stop();
});

const uniquePrefix = () => `/ugcfs-test/${randomBytes(6).toString('hex')}`;
const open = (prefix: string, o: { pageSize?: number } = {}) => EtcdMetadataStore.open({ endpoints: etcd!.endpoints, prefix, pageSize: o.pageSize ?? 3 });

metadataStoreSuite(
  'etcd',
  async () => {
    const prefix = uniquePrefix();
    return {
      open: () => open(prefix),
      openAnother: () => open(prefix),
      destroy: async () => {
        const c = new EtcdClient({ endpoints: etcd!.endpoints });
        await c.deleteRange({ key: `${prefix}/`, rangeEnd: `${prefix}0` });
        await c.close();
      },
    };
  },
  { skip: reason },
);

describe.skipIf(reason)('etcd metadata store: high availability', () => {
  let prefix: string;
  const stores: EtcdMetadataStore[] = [];
  const fresh = async () => {
    const s = await open(prefix);
    stores.push(s);
    return s;
  };
  beforeAll(() => {
    prefix = uniquePrefix();
  });
  afterAll(async () => {
    for (const s of stores) await s.close();
  });

  it('lays keys out as <prefix>/<namespace>/<key> with JSON values', async () => {
    const s = await fresh();
    await s.namespace('blocks').put('42', { id: 42 });
    const raw = await s.client.range({ key: `${prefix}/blocks/42` });
    expect(raw.kvs[0]!.value.toString()).toBe('{"id":42}');
  });

  it('fences writes: a stale epoch changes nothing, and a new campaign ends the old leader', async () => {
    const s = await fresh();
    const other = await fresh();
    const lease1 = await s.grantLease(30);
    const c1 = await s.campaign('fence-test', { id: 'ns-1' }, lease1);
    expect(c1.won).toBe(true);
    if (!c1.won) return;
    const leader = s.fenced(c1.fence);
    const ns = leader.namespace<number>('fenced');
    const w = await ns.put('a', 1);
    expect(w.revision).toBeGreaterThan(c1.fence.epoch);
    await leader.batch([{ type: 'put', namespace: ns, key: 'b', value: 2 }, { type: 'del', namespace: ns, key: 'a' }]);
    expect(await ns.iterator().all()).toEqual([['b', 2]]);

    // a handle with a stale epoch (as if from an earlier term) is refused, and changes nothing
    const stale = s.fenced({ key: c1.fence.key, epoch: c1.fence.epoch - 1 });
    const before = await s.currentRevision();
    const err = await stale.namespace<number>('fenced').put('b', 99).catch((e: unknown) => e);
    expect(isNotLeader(err)).toBe(true);
    expect((err as { code: string }).code).toBe('UGCFS_ERR_NOT_LEADER');
    expect((err as Error).message).toMatch(/not the leader.*nothing was written/);
    const err2 = await stale.batch([{ type: 'put', namespace: ns, key: 'c', value: 3 }, { type: 'del', namespace: ns, key: 'b' }]).catch((e: unknown) => e);
    expect(isNotLeader(err2)).toBe(true);
    expect(await s.currentRevision()).toBe(before);
    expect(await ns.iterator().all()).toEqual([['b', 2]]);

    // the leader key goes (lease revoked); another name server campaigns and wins
    await s.revokeLease(lease1);
    expect(await s.leader('fence-test')).toBeUndefined();
    expect(isNotLeader(await ns.put('b', 3).catch((e: unknown) => e))).toBe(true);
    const lease2 = await other.grantLease(30);
    const c2 = await other.campaign('fence-test', { id: 'ns-2' }, lease2);
    expect(c2.won).toBe(true);
    if (!c2.won) return;
    expect(c2.fence.epoch).toBeGreaterThan(c1.fence.epoch);
    // the old leader's handle still fails: same key, new epoch
    const e3 = await ns.put('b', 4).catch((e: unknown) => e);
    expect(isNotLeader(e3)).toBe(true);
    expect((e3 as { currentEpoch: number }).currentEpoch).toBe(c2.fence.epoch);
    await other.fenced(c2.fence).namespace<number>('fenced').put('b', 5);
    expect(await ns.get('b')).toBe(5);
    // the old leader cannot resign the new one's key
    expect(await s.resign(c1.fence)).toBe(false);
    expect(await other.resign(c2.fence)).toBe(true);
    expect(await other.leader('fence-test')).toBeUndefined();
    await other.revokeLease(lease2);
  });

  it('watches every change after a revision, in order, with namespaces decoded', async () => {
    const s = await fresh();
    const a = s.namespace<number>('wa');
    const b = s.namespace<string>('wb');
    await a.put('before', 0);
    const from = await s.currentRevision();
    const expected: Array<Pick<WatchEvent, 'type' | 'namespace' | 'key' | 'value'>> = [];
    const revs: number[] = [];
    for (let i = 0; i < 20; i++) {
      revs.push((await a.put(`k${i}`, i)).revision);
      expected.push({ type: 'put', namespace: 'wa', key: `k${i}`, value: i });
      if (i % 5 === 4) {
        revs.push((await a.del(`k${i - 1}`)).revision);
        expected.push({ type: 'del', namespace: 'wa', key: `k${i - 1}`, value: undefined });
      }
    }
    const br = await s.batch([{ type: 'put', namespace: b, key: 'x/y!z', value: 'one' }, { type: 'put', namespace: a, key: 'last', value: 99 }]);
    expected.push({ type: 'put', namespace: 'wb', key: 'x/y!z', value: 'one' }, { type: 'put', namespace: 'wa', key: 'last', value: 99 });

    const got: WatchEvent[] = [];
    const deliveries: number[] = [];
    let resolve!: () => void;
    const all = new Promise<void>((r) => (resolve = r));
    const w = s.watch('', from, async (events, revision) => {
      deliveries.push(revision);
      got.push(...events);
      if (got.length >= expected.length) resolve();
    });
    await all;
    expect(got.map(({ type, namespace, key, value }) => ({ type, namespace, key, value }))).toEqual(expected);
    expect(got.map((e) => e.revision)).toEqual([...revs, br.revision, br.revision]);
    expect(deliveries).toEqual([...deliveries].sort((x, y) => x - y));
    // a namespace prefix sees only its namespace; live changes arrive too
    const onlyB: WatchEvent[] = [];
    const wb = s.watch('wb/', from, (events) => void onlyB.push(...events));
    await wb.ready;
    await b.put('live', 'two');
    await a.put('not-b', 1);
    await expect.poll(() => onlyB.map((e) => e.key), { timeout: 5000 }).toEqual(['x/y!z', 'live']);
    expect(w.lastRevision).toBeGreaterThanOrEqual(br.revision);
    await w.close();
    await wb.close();
    expect(await w.done).toEqual({ reason: 'closed' });
  });

  it('ends a watch whose start was compacted, saying so', async () => {
    const s = await fresh();
    const ns = s.namespace<number>('compacted');
    const r1 = await ns.put('a', 1);
    await ns.put('a', 2);
    const r3 = await ns.put('a', 3);
    await s.client.compact(r3.revision);
    const w = s.watch('compacted/', r1.revision - 1, () => {});
    expect(await w.done).toEqual({ reason: 'compacted', compactRevision: r3.revision });
    // an iteration whose pinned revision is compacted between pages is refused as such
    for (let i = 0; i < 7; i++) await ns.put(`k${i}`, i);
    const it = ns.iterator()[Symbol.asyncIterator](); // pages of at most 3 keys
    expect((await it.next()).value).toEqual(['a', 3]);
    await s.client.compact((await ns.put('k0', 100)).revision);
    // the rest of the first page, then the next page's read fails (8 keys: not all in one page)
    let err: unknown;
    for (let i = 0; i < 8 && err === undefined; i++) await it.next().catch((e: unknown) => (err = e));
    expect(isCompacted(err)).toBe(true);
    expect((err as Error).message).toMatch(/compacted/);
  });

  it('lease expiry removes the leader key; a kept-alive lease keeps it', async () => {
    const s = await fresh();
    const short = await s.grantLease(1);
    const c = await s.campaign('expiry', { id: 'a' }, short);
    expect(c.won).toBe(true);
    expect((await s.leader('expiry'))?.value).toEqual({ id: 'a' });
    // etcd's smallest TTL is about 1.5 s (3/2 of its election timeout)
    await expect.poll(() => s.leader('expiry'), { timeout: 8000, interval: 200 }).toBeUndefined();
    expect(await s.client.leaseKeepAliveOnce(short.id)).toBe(0);

    const kept = await s.grantLease(2);
    const c2 = await s.campaign('expiry', { id: 'b' }, kept);
    expect(c2.won).toBe(true);
    const keeper = s.keepAlive(kept);
    await new Promise((r) => setTimeout(r, 3500));
    expect((await s.leader('expiry'))?.value).toEqual({ id: 'b' });
    let lostWhy: string | undefined;
    void keeper.lost.then((w) => (lostWhy = w));
    await s.revokeLease(kept);
    expect(await s.leader('expiry')).toBeUndefined();
    await expect.poll(() => lostWhy, { timeout: 5000 }).toMatch(/expired/);
    keeper.stop();
  });

  it('lets exactly one of several campaigners win, and the others see the winner', async () => {
    const ss = await Promise.all(Array.from({ length: 5 }, () => fresh()));
    const leases = await Promise.all(ss.map((s) => s.grantLease(30)));
    const results = await Promise.all(ss.map((s, i) => s.campaign('exclusive', { id: `ns-${i}` }, leases[i]!)));
    const winners = results.filter((r) => r.won);
    expect(winners).toHaveLength(1);
    const w = winners[0]!;
    for (const r of results) {
      expect(r.leader?.value).toEqual(w.leader!.value);
      expect(r.leader?.epoch).toBe(w.won ? w.fence.epoch : -1);
    }
    // observers learn of the change when the winner resigns, and the next campaign wins
    const seen: Array<unknown> = [];
    const obs = await ss[0]!.observeLeader('exclusive', (l) => void seen.push(l?.value));
    expect(seen).toEqual([w.leader!.value]);
    if (w.won) await ss[0]!.resign(w.fence);
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(2);
    expect(seen[1]).toBeUndefined();
    const loser = results.findIndex((r) => !r.won);
    const again = await ss[loser]!.campaign('exclusive', { id: `ns-${loser}` }, leases[loser]!);
    expect(again.won).toBe(true);
    await expect.poll(() => seen[2], { timeout: 5000 }).toEqual({ id: `ns-${loser}` });
    await obs.close();
    for (const [i, s] of ss.entries()) await s.revokeLease(leases[i]!);
  });
});

describe.skipIf(reason)('etcd metadata store: paging a large namespace', () => {
  it('reads every key once, in order, each request counting a few pages of keys, not all that are left', async () => {
    const s = await open(uniquePrefix(), { pageSize: 16 });
    try {
      const ns = s.namespace<number>('blocks');
      // decimal ids (the block map's keys: lengths mixed, dense under some prefixes) and a few others
      const n = 3000;
      const keys = [...Array.from({ length: n }, (_, i) => String(i + 1)), 'a', 'a0', 'zz', 'é'];
      for (let i = 0; i < keys.length; i += 128) await ns.batch(keys.slice(i, i + 128).map((k) => ({ type: 'put' as const, key: k, value: 1 })));
      const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
      // what etcd walks per request is the count of [key, range_end): summed over the requests
      let counted = 0;
      let requests = 0;
      const range = s.client.range.bind(s.client);
      s.client.range = async (r) => {
        const res = await range(r);
        if (r.limit !== undefined) {
          counted += res.count;
          requests++;
        }
        return res;
      };
      expect((await ns.iterator().all()).map(([k]) => k)).toEqual(sorted);
      // one long range would count n²/(2 x 16) ≈ 280,000 keys in all
      expect(counted).toBeLessThan(10 * keys.length);
      // (and the empty first bytes before '1' skipped one request each)
      expect(requests).toBeLessThan((3 * keys.length) / 16 + 64);
      // bounds and limits hold across slices
      expect((await ns.iterator({ gte: '1999', lt: '2001' }).all()).map(([k]) => k)).toEqual(sorted.filter((k) => k >= '1999' && k < '2001'));
      expect((await ns.iterator({ gt: '25', limit: 40 }).all()).map(([k]) => k)).toEqual(sorted.filter((k) => k > '25').slice(0, 40));
      expect((await ns.iterator({ reverse: true, limit: 5 }).all()).map(([k]) => k)).toEqual(sorted.slice(-5).reverse());
    } finally {
      await s.close();
    }
  }, 60_000);
});
