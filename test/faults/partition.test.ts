// Partitions and slow links, made on the wire by TCP proxies in front of the name server
// and every data server (data servers advertise their proxy as --public-url, so peer
// replication crosses the proxies too). Every operation runs under a hang bound derived from
// the client's own timeouts: it must settle in time, and a failure must be a typed ugcfs error.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { start, type Proc } from '../helpers/proc.ts';
import { faultSeed, outcome, payload, pool, seededRandom, sha, sleep } from './fault-kit.ts';
import { startProxiedCluster, type ProxiedCluster } from './proxied-cluster.ts';

const CLIENT_TIMEOUT_MS = 1500;
// A write is at most 4 attempts of assign + put + failure report, each bounded by the timeout.
const WRITE_BOUND_MS = 4 * 3 * CLIENT_TIMEOUT_MS + 4000;
// A read is at most 4 rounds of locate + one try per replica (3), plus back-off.
const READ_BOUND_MS = 4 * 4 * CLIENT_TIMEOUT_MS + 4000;
const CLEAN_WRITE_FAILURES = new Set<string>(['UGCFS_ERR_REPLICATION', 'UGCFS_ERR_UNAVAILABLE', 'UGCFS_ERR_TIMEOUT', 'UGCFS_ERR_UPSTREAM', 'UGCFS_ERR_NO_SPACE']);

describe('partitions and slow links', () => {
  let pc: ProxiedCluster;
  let origin: Proc;
  const seed = faultSeed();
  const rnd = seededRandom(seed);
  /** every acknowledged write: fid -> bytes and the replicas it was acknowledged on */
  const acked = new Map<string, { data: Buffer; replicas: string[] }>();
  let faults = 0;
  let opsChecked = 0;

  beforeAll(async () => {
    console.log(`partition suite seed=${seed} (replay with UGCFS_FAULT_SEED=${seed})`);
    pc = await startProxiedCluster({ dataservers: 3, replicas: 2, clientTimeoutMs: CLIENT_TIMEOUT_MS });
    // an origin behind the same proxies: it reaches the name server and data servers only through them
    origin = await start(['origin', '--nameserver', pc.nsProxy.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: pc.cluster.secret } });
  }, 90_000);

  afterAll(async () => {
    console.log(`partition suite: faults injected=${faults} operations checked=${opsChecked} acknowledged files=${acked.size}`);
    await origin?.kill();
    await pc?.stop();
  });

  async function write(size: number): Promise<{ ok: boolean; code?: string }> {
    const data = payload(rnd, size);
    const r = await outcome(() => pc.client.write(data, { mime: 'application/octet-stream' }), WRITE_BOUND_MS, 'write');
    opsChecked++;
    if (r.ok) {
      acked.set(r.value.fid, { data, replicas: r.value.replicas.map((d) => d.id) });
      return { ok: true };
    }
    expect(r.code, r.message).not.toBe('HANG');
    expect(CLEAN_WRITE_FAILURES.has(r.code), `${r.code}: ${r.message}`).toBe(true);
    return { ok: false, code: r.code };
  }

  async function readBack(fids: string[]): Promise<void> {
    for (const fid of fids) {
      const r = await outcome(() => pc.client.read(fid), READ_BOUND_MS, `read ${fid}`);
      opsChecked++;
      expect(r.ok, r.ok ? '' : `${fid}: ${r.code} ${r.message}`).toBe(true);
      if (r.ok) expect(sha(r.value.data)).toBe(sha(acked.get(fid)!.data));
    }
  }

  /** Asked directly (past the proxies): an acknowledged write is on every replica it was acknowledged on. */
  async function onEveryReplica(fids: string[]): Promise<void> {
    for (const fid of fids) {
      for (const id of acked.get(fid)!.replicas) {
        const i = pc.cluster.dsIds.indexOf(id);
        expect(await pc.holds(i, fid), `${fid} missing on ${id}`).toBe(true);
      }
    }
  }

  it('slow links: every hop delayed 100 ms each way, writes and reads still succeed', async () => {
    for (const p of pc.proxies()) p.set({ delayMs: 100 });
    faults += pc.proxies().length;
    const before = new Set(acked.keys());
    for (let i = 0; i < 4; i++) expect((await write(20_000 + i * 5000)).ok).toBe(true);
    const fresh = [...acked.keys()].filter((f) => !before.has(f));
    await readBack(fresh);
    pc.healAll();
    await onEveryReplica(fresh);
  });

  it('a data server black-holed from clients and peers: writes land elsewhere or fail cleanly, reads fail over', async () => {
    const before = new Set(acked.keys());
    const baseline: string[] = [];
    // until the silent server holds a few of them: reading those proves fail-over
    const onSilent = () => baseline.filter((f) => acked.get(f)!.replicas.includes('ds-3'));
    // (an assign batch of up to 100 fids lands in one block, so this may take several batches)
    for (let i = 0; i < 600 && (baseline.length < 8 || onSilent().length < 3); i++) {
      expect((await write(8_000)).ok).toBe(true);
      baseline.splice(0, baseline.length, ...[...acked.keys()].filter((f) => !before.has(f)));
    }
    expect(onSilent().length).toBeGreaterThanOrEqual(3);

    pc.dsProxies[2]!.set({ mode: 'blackhole' });
    faults++;
    const during = new Set(acked.keys());
    try {
      const results = [];
      for (let i = 0; i < 8; i++) results.push(await write(8_000));
      // the name server still sees ds-3 (its heartbeats pass), so some assigns pick it; the
      // rest of the cluster is whole, so a write that keeps retrying finds a good block
      expect(results.filter((r) => r.ok).length).toBeGreaterThan(0);
      for (const f of [...acked.keys()].filter((k) => !during.has(k))) expect(acked.get(f)!.replicas).not.toContain('ds-3');
      await readBack(baseline);
      // the origin fails over too (its client has the default 10 s timeout per try)
      for (const fid of onSilent().slice(0, 2)) {
        const r = await outcome(async () => {
          const res = await request(`${origin.url}/${fid}`, { headersTimeout: 120_000, bodyTimeout: 120_000 });
          return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
        }, 120_000, `origin GET ${fid}`);
        opsChecked++;
        expect(r.ok && r.value.status, r.ok ? '' : r.message).toBe(200);
        if (r.ok) expect(sha(r.value.body)).toBe(sha(acked.get(fid)!.data));
      }
    } finally {
      pc.dsProxies[2]!.set({ mode: 'pass' });
    }
    await onEveryReplica([...acked.keys()].filter((f) => !during.has(f) || baseline.includes(f)));
  });

  it('connections reset mid-flight during a concurrent write burst: nothing half-acknowledged', async () => {
    const before = new Set(acked.keys());
    let stop = false;
    const cutter = (async () => {
      while (!stop) {
        await sleep(30 + Math.floor(rnd() * 60));
        const p = pc.dsProxies[Math.floor(rnd() * pc.dsProxies.length)]!;
        if (p.cut() > 0) faults++;
      }
    })();
    const outcomes: Array<{ ok: boolean; code?: string }> = [];
    await pool(Array.from({ length: 24 }, (_, i) => i), 4, async (i) => {
      outcomes.push(await write(30_000 + (i % 5) * 7_000));
    });
    stop = true;
    await cutter;
    const fresh = [...acked.keys()].filter((f) => !before.has(f));
    expect(fresh.length).toBe(outcomes.filter((o) => o.ok).length);
    await onEveryReplica(fresh);
    await readBack(fresh);
  });

  it('the name server black-holed from the client: writes fail within their bound with a typed error, then work again', async () => {
    pc.nsProxy.set({ mode: 'blackhole' });
    faults++;
    try {
      // fids fetched ahead (assign batches) may carry a few writes; once they run out, every
      // write needs the name server and must fail cleanly within its bound
      const results: Array<{ ok: boolean }> = [];
      // (a batch is up to 100 fids: src/clients/cluster-client.ts)
      for (let i = 0; i < 116 && results.every((r) => r.ok); i++) results.push(await write(4_000));
      expect(results.some((r) => !r.ok)).toBe(true);
    } finally {
      pc.nsProxy.set({ mode: 'pass' });
    }
    expect((await write(4_000)).ok).toBe(true);
  });

  it('a data server cut off from the name server is declared dead, its blocks re-replicated, and the cluster heals when the link returns', async () => {
    pc.hbProxies[0]!.set({ mode: 'refuse' });
    faults++;
    try {
      await pc.cluster.waitFor((s) => s.dataservers.some((d) => d.id === 'ds-1' && !d.alive), 'ds-1 declared dead', 30_000);
      // while the name server thinks it gone, writes still succeed (clients can still reach it,
      // so fids fetched ahead for its blocks may land there too)
      for (let i = 0; i < 4; i++) expect((await write(6_000)).ok).toBe(true);
    } finally {
      pc.hbProxies[0]!.set({ mode: 'pass' });
    }
    await pc.cluster.waitFor((s) => s.dataservers.every((d) => d.alive) && s.underReplicatedBlocks === 0, 'healed cluster', 60_000);
    expect((await write(6_000)).ok).toBe(true);
  });

  it('after every fault has healed, every acknowledged write reads back byte-exact (bytes lost: 0)', async () => {
    pc.healAll();
    const all = [...acked.keys()];
    expect(all.length).toBeGreaterThan(20);
    await readBack(all);
    // and each is still on as many live copies as were acknowledged
    for (const fid of all) {
      const st = await pc.cluster.client.stat(fid);
      opsChecked++;
      expect(st.replicas.length, fid).toBeGreaterThanOrEqual(2);
    }
  });
});
