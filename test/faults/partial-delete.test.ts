// Copies of a block must converge after a delete that failed half-way. A client deletes a
// file: the DELETE reaches one replica, the other replica is cut off, and by the time the
// client reports the missed replica the name server is unreachable too, so the delete
// fails (unacknowledged, which is fine). But one copy now holds a tombstone and the other
// the live file, and nothing ever reconciles them: reads answer 404 or 200 depending on
// which replica the hashring tries first, and `ugcfs verify` reports "replicas-disagree"
// that --repair cannot mend (two copies, no majority). Seen as an intermittent verify
// failure in the crash matrix; made deterministic here with the TCP proxies.
// verify names the key; verify --repair lets the tombstone win (docs/OPERATIONS.md), after
// which a plain verify is clean.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/file-id.ts';
import { payload, seededRandom, sleep } from './fault-kit.ts';
import { startProxiedCluster, type ProxiedCluster } from './proxied-cluster.ts';

describe('a delete that reached only one replica', () => {
  let pc: ProxiedCluster;

  beforeAll(async () => {
    pc = await startProxiedCluster({ dataservers: 3, replicas: 2, clientTimeoutMs: 1500 });
  }, 90_000);

  afterAll(async () => {
    await pc?.stop();
  });

  it('leaves copies that verify --repair brings together (the delete wins) and a clean verify', async () => {
    const w = await pc.client.write(payload(seededRandom(7), 4000));
    const [a, b] = w.replicas.map((r) => pc.cluster.dsIds.indexOf(r.id));

    pc.dsProxies[b!]!.set({ mode: 'blackhole' });
    const attempt = pc.client.delete(w.fid).then(() => 'acknowledged', (err: { code?: string }) => err.code ?? 'untyped');
    await sleep(400); // the block is located; the DELETEs are out
    pc.nsProxy.set({ mode: 'refuse' });
    expect(await attempt).not.toBe('acknowledged');
    pc.healAll();
    await sleep(1500);

    const onA = await pc.holds(a!, w.fid);
    const onB = await pc.holds(b!, w.fid);
    expect({ onA, onB }).toEqual({ onA: false, onB: true }); // the half-way state itself, for the record

    const key = String(decodeFid(w.fid).key);
    const check = await pc.cluster.cli(['verify']);
    expect(check.code, check.stdout).toBe(1);
    expect(check.stdout).toMatch(new RegExp(`deleted on another copy: key ${key}\\b`));
    expect({ onA: await pc.holds(a!, w.fid), onB: await pc.holds(b!, w.fid) }, 'verify without --repair changed a copy').toEqual({ onA: false, onB: true });

    const v = await pc.cluster.cli(['verify', '--repair']);
    const after = [await pc.holds(a!, w.fid), await pc.holds(b!, w.fid)];
    expect(after[0], `copies disagree after verify --repair:\n${v.stdout}`).toBe(after[1]);
    expect(after, 'the delete wins').toEqual([false, false]);
    expect(v.code, v.stdout).toBe(0);
    const clean = await pc.cluster.cli(['verify']);
    expect(clean.code, clean.stdout).toBe(0);
  });
});
