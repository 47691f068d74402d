// Copies of a block must converge after a write that died half-way. The primary appends a
// write locally while forwarding it to the other replica; the link to that replica is
// silent, the client gives up (the write is not acknowledged: fine), and the primary is
// SIGKILLed before its replication timeout would have made it tombstone its own copy. After
// the restart the primary holds a live record its peer never had. No client knows the fid,
// so nothing is served wrongly, but `ugcfs verify` reports "replicas-disagree" that
// --repair cannot mend (two copies, no majority), for good. Seen in the crash matrix ("live
// on one copy, absent on the other, never acknowledged"); made deterministic here.
// Marked it.fails until verify --repair reconciles such copies (e.g. copies a record that
// only some copies hold, so no acknowledged write can be lost and the copies agree); when
// this test starts failing, turn it into a plain `it`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callJson, callRaw } from '../../src/http-client.ts';
import { DS_ROUTES, HEADERS, NS_ROUTES, type AssignResult } from '../../src/protocol.ts';
import { payload, seededRandom, sleep } from './fault-kit.ts';
import { startProxiedCluster, type ProxiedCluster } from './proxied-cluster.ts';

describe('a write whose primary died while forwarding it', () => {
  let pc: ProxiedCluster;

  beforeAll(async () => {
    // The restart must not look like a death: a repair would copy the block from the peer
    // and drop the primary's copy, hiding the divergence by luck of timing.
    pc = await startProxiedCluster({ dataservers: 3, replicas: 2, clientTimeoutMs: 1500, deadAfterMs: 120_000 });
  }, 90_000);

  afterAll(async () => {
    await pc?.stop();
  });

  it.fails('leaves copies that verify --repair brings into agreement (BUG: replicas-disagree for good)', async () => {
    const a = await callJson<AssignResult>(pc.nsProxy.url + NS_ROUTES.assign, { method: 'POST', body: {}, secret: pc.cluster.secret });
    const [primary, peer] = a.replicas.map((r) => pc.cluster.dsIds.indexOf(r.id));
    pc.dsProxies[peer!]!.set({ mode: 'blackhole' });
    // exactly what the cluster client sends, to the primary's own address
    const put = callRaw(pc.direct[primary!]! + DS_ROUTES.needle.replace(':fid', a.fid), {
      method: 'PUT',
      secret: pc.cluster.secret,
      body: payload(seededRandom(3), 3000),
      headers: { [HEADERS.mime]: 'application/octet-stream', [HEADERS.replicas]: pc.dsProxies[peer!]!.url },
      timeoutMs: 1000,
    }).then(
      (r) => r.status,
      () => 'gave up',
    );
    expect(await put).toBe('gave up');
    expect(await pc.holds(primary!, a.fid), 'the primary appended before forwarding finished').toBe(true);
    await pc.restartDataserver(primary!);
    pc.healAll();
    await pc.cluster.waitFor((s) => s.dataservers.every((d) => d.alive), 'all alive', 30_000);
    await sleep(500);
    expect({ primary: await pc.holds(primary!, a.fid), peer: await pc.holds(peer!, a.fid) }).toEqual({ primary: true, peer: false });

    const v = await pc.cluster.cli(['verify', '--repair']);
    const after = [await pc.holds(primary!, a.fid), await pc.holds(peer!, a.fid)];
    expect(after[0], `copies disagree after verify --repair:\n${v.stdout}`).toBe(after[1]);
    expect(v.code, v.stdout).toBe(0);
  });
});
