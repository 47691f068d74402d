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
import { decodeFid } from '../../src/wire/file-id.ts';
import { callJson } from '../../src/clients/http-client.ts';
import { DS_ROUTES, type CompactResult } from '../../src/wire/protocol.ts';
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

  it('the delete still wins after the copy that took it compacted the record away', async () => {
    const w = await pc.client.write(payload(seededRandom(8), 4000));
    const [a, b] = w.replicas.map((r) => pc.cluster.dsIds.indexOf(r.id));
    pc.dsProxies[b!]!.set({ mode: 'blackhole' });
    const attempt = pc.client.delete(w.fid).then(() => 'acknowledged', (err: { code?: string }) => err.code ?? 'untyped');
    await sleep(400);
    pc.nsProxy.set({ mode: 'refuse' });
    expect(await attempt).not.toBe('acknowledged');
    pc.healAll();
    await sleep(1500);
    expect({ onA: await pc.holds(a!, w.fid), onB: await pc.holds(b!, w.fid) }).toEqual({ onA: false, onB: true });

    // Compaction on the copy that took the delete drops the record: only its tombstone can
    // still tell verify that the key was deleted there rather than never written.
    const block = decodeFid(w.fid).block;
    const c = await callJson<CompactResult>(pc.direct[a!]! + DS_ROUTES.blockCompact.replace(':id', String(block)), { method: 'POST', secret: pc.cluster.secret });
    expect(c.afterBytes).toBeLessThan(c.beforeBytes);

    const v = await pc.cluster.cli(['verify', '--repair']);
    expect(v.code, v.stdout).toBe(0);
    expect([await pc.holds(a!, w.fid), await pc.holds(b!, w.fid)], `the deleted file came back:\n${v.stdout}`).toEqual([false, false]);
    expect((await pc.cluster.cli(['verify'])).code).toBe(0);
  });
});
