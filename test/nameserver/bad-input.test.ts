// The name server never trusts what it is told: forged heartbeats without the cluster
// secret are 401, malformed ones 400, unknown data-server ids 404, and a block report
// claiming blocks the server does not hold is refused (never allocated) or not counted
// (allocated elsewhere) — reads and stat keep pointing at the real holders.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import { callRaw } from '../../src/clients/http-client.ts';
import { NS_ROUTES, type BlockLocation, type Heartbeat } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';

let c: Cluster;
let fid: string;
let block: number;

beforeAll(async () => {
  c = await startCluster({ dataservers: 3, replicas: 2, deadAfterMs: 1500 });
  const w = await c.client.write(randomBytes(4000));
  fid = w.fid;
  block = (await c.client.stat(fid)).block;
});
afterAll(async () => {
  await c?.stop();
});

const ns = (path: string) => c.nameserver.url + path;

function forged(id: string, blocks: number[]): Heartbeat {
  return {
    id,
    url: 'http://127.0.0.1:9',
    rack: 'z',
    freeBytes: 10 ** 15,
    usedBytes: 0,
    blockSize: 1024 * 1024,
    blocks: blocks.map((b) => ({ id: b, size: 4096, liveCount: 1, liveBytes: 4000, deletedBytes: 0, sealed: false, readonly: false, gen: 0 })),
  };
}

async function errorCode(res: { status: number; body: Buffer }): Promise<string> {
  return (JSON.parse(res.body.toString()) as { error: { code: string } }).error.code;
}

describe('heartbeats', () => {
  it('refuses a heartbeat without (or with a wrong) cluster secret, and registers nothing', async () => {
    for (const secret of [undefined, 'not-the-secret']) {
      const res = await callRaw(ns(NS_ROUTES.heartbeat), { method: 'POST', body: forged('intruder', [block]), secret });
      expect(res.status).toBe(401);
      expect(await errorCode(res)).toBe('UGCFS_ERR_UNAUTHORIZED');
    }
    const s = await c.status();
    expect(s.dataservers.map((d) => d.id)).not.toContain('intruder');
  });

  it('refuses malformed heartbeats with 400', async () => {
    const bad: unknown[] = [
      'nonsense',
      [],
      { ...forged('ok-id', []), id: '../etc' },
      { ...forged('ok-id', []), url: 'ftp://x' },
      { ...forged('ok-id', []), freeBytes: -1 },
      { ...forged('ok-id', []), blocks: [{ id: -4, size: 1 }] },
      { ...forged('ok-id', []), blocks: 'all of them' },
    ];
    for (const body of bad) {
      const res = await callRaw(ns(NS_ROUTES.heartbeat), { method: 'POST', body, secret: c.secret });
      expect(res.status).toBe(400);
      expect(await errorCode(res)).toBe('UGCFS_ERR_BAD_REQUEST');
    }
    const raw = await callRaw(ns(NS_ROUTES.heartbeat), { method: 'POST', body: Buffer.from('{"id":'), headers: { 'content-type': 'application/json' }, secret: c.secret });
    expect(raw.status).toBe(400);
    expect((await c.status()).dataservers.map((d) => d.id)).not.toContain('ok-id');
  });

  it('does not count copies a server claims but was never given', async () => {
    // A liar with the secret claims the real block and blocks never allocated.
    const res = await callRaw(ns(NS_ROUTES.heartbeat), { method: 'POST', body: forged('liar', [block, 424242, 0]), secret: c.secret });
    expect(res.status).toBe(200);
    const reply = JSON.parse(res.body.toString()) as { ok: boolean; commands: unknown[] };
    expect(reply.ok).toBe(true);
    const s = await c.status();
    const liar = s.dataservers.find((d) => d.id === 'liar')!;
    expect(liar.alive).toBe(true);
    expect(liar.blocks).toBe(0);
    expect(s.underReplicatedBlocks).toBe(0);
    const loc = JSON.parse((await callRaw(ns(`/blocks/${block}`), { secret: c.secret })).body.toString()) as BlockLocation;
    expect(loc.replicas.map((r) => r.id)).not.toContain('liar');
    expect(loc.replicas).toHaveLength(2);
    // the never-allocated block stays unknown
    const unknown = await callRaw(ns('/blocks/424242'), { secret: c.secret });
    expect(unknown.status).toBe(404);
    expect(await errorCode(unknown)).toBe('UGCFS_ERR_BLOCK_NOT_FOUND');
    // the client still reads from the real holders
    expect((await c.client.stat(fid)).replicas).not.toContain('liar');
    expect((await c.client.read(fid)).data.length).toBe(4000);
    expect(c.nameserver.lines.some((l) => l.includes('refused a block report'))).toBe(true);
  });

  it('tells a server to drop a copy it holds beyond the replica count', async () => {
    // Another liar: the real block has its two copies elsewhere, so this "copy" is extra.
    const beat = () => callRaw(ns(NS_ROUTES.heartbeat), { method: 'POST', body: forged('liar-2', [block]), secret: c.secret });
    const reply = JSON.parse((await beat()).body.toString()) as { commands: Array<{ kind: string; block: number }> };
    expect(reply.commands).toContainEqual(expect.objectContaining({ kind: 'delete-block', block }));
    // The order is on its way: the next beat, which still lists the copy, is not told again at once.
    const again = JSON.parse((await beat()).body.toString()) as { commands: unknown[] };
    expect(again.commands).toEqual([]);
  });

  it('writes never go to a server that cannot create blocks', async () => {
    // The liar is "alive" with huge free space, but its URL is dead: new blocks avoid it
    // after the failed creation, and writes still succeed.
    for (let i = 0; i < 20; i++) {
      const w = await c.client.write(randomBytes(500));
      expect(w.replicas.map((r) => r.id)).not.toContain('liar');
      // the liar's bogus block id 424242 did not move the block-id sequence
      expect(decodeFid(w.fid).block).toBeLessThan(1000);
    }
  });
});

describe('admin calls with unknown ids', () => {
  it('answers 404 UGCFS_ERR_DATASERVER_NOT_FOUND', async () => {
    const get = await callRaw(ns('/dataservers/ds-nope'), { secret: c.secret });
    expect(get.status).toBe(404);
    expect(await errorCode(get)).toBe('UGCFS_ERR_DATASERVER_NOT_FOUND');
    const del = await callRaw(ns('/dataservers/ds-nope'), { method: 'DELETE', secret: c.secret });
    expect(del.status).toBe(404);
    const wf = await callRaw(ns(`/blocks/${block}/write-failed`), { method: 'POST', body: { dsId: 'ds-nope', reason: 'x' }, secret: c.secret });
    expect(wf.status).toBe(404);
    expect(await errorCode(wf)).toBe('UGCFS_ERR_DATASERVER_NOT_FOUND');
    const md = await callRaw(ns(`/blocks/${block}/missed-deletes`), { method: 'POST', body: { fid, dataservers: ['ds-nope'] }, secret: c.secret });
    expect(md.status).toBe(404);
    expect(await errorCode(md)).toBe('UGCFS_ERR_DATASERVER_NOT_FOUND');
    // nothing changed: the block still takes writes and the file is still there
    const loc = JSON.parse((await callRaw(ns(`/blocks/${block}`), { secret: c.secret })).body.toString()) as BlockLocation;
    expect(loc.state).not.toBe('failed');
    expect((await c.client.read(fid)).data.length).toBe(4000);
  });

  it('a live data server cannot be forgotten; a known one is listed', async () => {
    const res = await callRaw(ns('/dataservers/ds-1'), { method: 'DELETE', secret: c.secret });
    expect(res.status).toBe(409);
    const ok = await callRaw(ns('/dataservers/ds-1'), { secret: c.secret });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body.toString())).toMatchObject({ id: 'ds-1', alive: true });
  });

  it('refuses malformed block ids, assigns and internal calls without the secret', async () => {
    expect((await callRaw(ns('/blocks/abc'), { secret: c.secret })).status).toBe(400);
    expect((await callRaw(ns('/blocks/99999999999'), { secret: c.secret })).status).toBe(400);
    expect((await callRaw(ns(NS_ROUTES.assign), { method: 'POST', body: { replicas: 0 }, secret: c.secret })).status).toBe(400);
    expect((await callRaw(ns(NS_ROUTES.assign), { method: 'POST', body: { replicas: 'two' }, secret: c.secret })).status).toBe(400);
    for (const count of [0, 101, 2.5, '3']) {
      expect((await callRaw(ns(NS_ROUTES.assign), { method: 'POST', body: { count }, secret: c.secret })).status).toBe(400);
    }
    const batch = JSON.parse((await callRaw(ns(NS_ROUTES.assign), { method: 'POST', body: { count: 5 }, secret: c.secret })).body.toString()) as { fid: string; fids: string[]; block: number };
    expect(batch.fids).toHaveLength(5);
    expect(new Set(batch.fids).size).toBe(5);
    expect(batch.fids[0]).toBe(batch.fid);
    expect(batch.fids.every((f) => decodeFid(f).block === batch.block)).toBe(true);
    for (const [method, path] of [['POST', NS_ROUTES.assign], ['GET', `/blocks/${block}`], ['GET', NS_ROUTES.status], ['POST', `/blocks/${block}/write-failed`]] as const) {
      const res = await callRaw(ns(path), { method, body: method === 'POST' ? {} : undefined });
      expect(res.status).toBe(401);
    }
    const md = await callRaw(ns(`/blocks/${block}/missed-deletes`), { method: 'POST', body: { fid: 'garbage', dataservers: [] }, secret: c.secret });
    expect(md.status).toBe(400);
    expect(await errorCode(md)).toBe('UGCFS_ERR_BAD_FID');
  });
});
