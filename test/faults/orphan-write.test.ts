// Copies of a block must converge after a write that died half-way. The primary appends a
// write locally while forwarding it to the other replica; the link to that replica is
// silent, the client gives up (the write is not acknowledged: fine), and the primary is
// SIGKILLed before its replication timeout would have made it tombstone its own copy. After
// the restart the primary holds a live record its peer never had. No client knows the fid,
// so nothing is served wrongly, but `ugcfs verify` reports "replicas-disagree" that
// --repair cannot mend (two copies, no majority), for good. Seen in the crash matrix ("live
// on one copy, absent on the other, never acknowledged"); made deterministic here.
// verify names the key; verify --repair copies the record to the copy that lacks it (a
// record only some copies hold may have been acknowledged, so the union is kept), after
// which a plain verify is clean.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, HEADERS, NS_ROUTES, type AssignResult } from '../../src/wire/protocol.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { readCopy } from '../helpers/needle-copy.ts';
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

  it('leaves copies that verify --repair brings into agreement (the record is copied to the peer)', async () => {
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

    const key = String(decodeFid(a.fid).key);
    const check = await pc.cluster.cli(['verify']);
    expect(check.code, check.stdout).toBe(1);
    expect(check.stdout).toMatch(new RegExp(`missing here, live on \\S+: key ${key}\\b`));

    const v = await pc.cluster.cli(['verify', '--repair']);
    const after = [await pc.holds(primary!, a.fid), await pc.holds(peer!, a.fid)];
    expect(after[0], `copies disagree after verify --repair:\n${v.stdout}`).toBe(after[1]);
    expect(after, 'the record is kept on both').toEqual([true, true]);
    expect(v.code, v.stdout).toBe(0);
    // the copied record is the same bytes, byte for byte
    const [x, y] = await Promise.all([primary!, peer!].map((i) => readCopy(pc.direct[i]!, a.fid, pc.cluster.secret)));
    expect(y!.status).toBe(200);
    expect(y!.body.equals(x!.body)).toBe(true);
    expect(y!.uploadTime).toBe(x!.uploadTime);
    const clean = await pc.cluster.cli(['verify']);
    expect(clean.code, clean.stdout).toBe(0);
  });
});
