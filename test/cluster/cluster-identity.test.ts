// Cluster identity (docs/NAMESERVER.md, "Cluster identity"), on real processes:
// - a data server that registered with another name-server state is foreign: refused (409
//   UGCFS_ERR_FOREIGN_CLUSTER), shown as foreign in `ugcfs status --json`, never given a
//   block or a command, and it keeps its blocks and serves them; back with its own name
//   server, it is a member again. A member of the refusing cluster that happens to have the
//   same id is not disturbed.
// - a block id a data server already holds with data (409 on create) is skipped, never
//   used, and that block is left alone.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, HEADERS, NS_ROUTES, type AssignResult, type BlockCreate, type Heartbeat, type HeartbeatReply } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { start, waitFor, type Proc } from '../helpers/proc.ts';

const clusters: Cluster[] = [];
const procs: Proc[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  await Promise.all(clusters.map((c) => c.stop()));
});

describe('a data server of another cluster', () => {
  it('is refused, shown as foreign, gets no block and no command, and keeps its blocks', async () => {
    // One secret for both, as in one organisation: the secret is not what tells clusters apart.
    const secret = randomBytes(24).toString('hex');
    const a = await startCluster({ dataservers: 2, racks: ['a', 'b'], replicas: 1, secret });
    // B's data servers are ds-1 and ds-2 too: the stray carries the id of one of B's members.
    const b = await startCluster({ dataservers: 2, racks: ['a', 'b'], replicas: 1, secret });
    clusters.push(a, b);
    const data = randomBytes(5000);
    const w = await a.client.write(data);
    const h = a.dsIds.indexOf(w.replicas[0]!.id);
    const id = a.dsIds[h]!;
    const aCluster = (await a.status()).cluster!;
    const bCluster = (await b.status()).cluster!;
    expect(aCluster).toMatch(/^c-[0-9a-f]{16}$/);
    expect(bCluster).not.toBe(aCluster);

    // The same data directory, pointed at cluster B's name server.
    await a.killDataserver(h, 'SIGTERM');
    const dir = join(a.dir, `ds-${h + 1}`);
    const before = readdirSync(join(dir, 'blocks')).sort();
    const stray = await start(['dataserver', '--data', dir, '--id', id, '--nameserver', b.nameserver.url, '--port', '0', '--rack', 'a', '--heartbeat-ms', '100', '--fsync=false'], { env: { UGCFS_CLUSTER_SECRET: secret } });
    procs.push(stray);
    const s = await b.waitFor((x) => (x.foreignDataservers ?? []).some((f) => f.url === stray.url), 'the stray refused as foreign');
    const shown = s.foreignDataservers!.find((f) => f.url === stray.url)!;
    expect(shown).toMatchObject({ id, cluster: aCluster, blocks: before.length });
    expect(shown.reason).toContain(aCluster);
    // B's own member with the same id is untouched
    expect(s.dataservers.map((d) => [d.id, d.alive])).toEqual([['ds-1', true], ['ds-2', true]]);
    expect(s.dataservers.every((d) => d.url !== stray.url)).toBe(true);

    // its own heartbeat answer: the stable code, and the name server's cluster in a header
    const hb: Heartbeat = { id, url: stray.url, rack: 'a', freeBytes: 1e12, usedBytes: 0, blockSize: 1 << 20, blocks: [], cluster: aCluster };
    const res = await callRaw(b.nameserver.url + NS_ROUTES.heartbeat, { method: 'POST', body: hb, secret });
    expect(res.status).toBe(409);
    expect((JSON.parse(res.body.toString()) as { error: { code: string } }).error.code).toBe('UGCFS_ERR_FOREIGN_CLUSTER');
    expect(res.headers[HEADERS.cluster]).toBe(bCluster);

    const cli = await b.cli(['status', '--json']);
    const json = JSON.parse(cli.stdout) as { cluster: string; dataservers: Array<{ url: string }>; foreignDataservers: Array<{ id: string; url: string; cluster: string }> };
    expect(json.cluster).toBe(bCluster);
    expect(json.foreignDataservers).toEqual([expect.objectContaining({ id, url: stray.url, cluster: aCluster })]);
    expect(json.dataservers.map((d) => d.url)).not.toContain(stray.url);
    const page = await fetch(b.nameserver.url + '/', { headers: { 'x-ugcfs-secret': secret } });
    expect(await page.text()).toContain(`data-foreign-ds="${id}"`);

    // B's writes never land there
    for (let i = 0; i < 10; i++) expect((await b.client.write(randomBytes(300))).replicas.map((r) => r.url)).not.toContain(stray.url);
    // it keeps its blocks and still serves them; it stays listed beside B's member of its id
    await new Promise((r) => setTimeout(r, 800));
    const later = await b.status();
    expect(later.foreignDataservers!.map((f) => f.url)).toEqual([stray.url]);
    expect(later.dataservers.find((d) => d.id === id)!.alive).toBe(true);
    expect(readdirSync(join(dir, 'blocks')).sort()).toEqual(before);
    const direct = await callRaw(stray.url + DS_ROUTES.needle.replace(':fid', w.fid), { secret });
    expect(direct.status).toBe(200);
    expect(direct.body.equals(data)).toBe(true);
    expect(stray.lines.filter((l) => l.includes(`belongs to cluster ${bCluster}, this data server to ${aCluster}: refusing its commands; blocks kept`))).toHaveLength(1);

    // home again: a member of A
    await stray.kill('SIGTERM');
    await a.restartDataserver(h);
    await a.waitForAlive();
    const reader = new ClusterClient({ nameserver: a.nameserver.url, secret });
    expect((await reader.read(w.fid)).data.equals(data)).toBe(true);
    await reader.close();
    expect((await a.status()).foreignDataservers ?? []).toHaveLength(0);
  });
});

describe('creating a block whose id a data server already holds', () => {
  it('skips the taken id, never uses it, and leaves that block alone', async () => {
    const c = await startCluster({ dataservers: 0, replicas: 1 });
    clusters.push(c);
    const creates: Array<{ id: number; body: BlockCreate }> = [];
    const holds = new Set([1, 2]); // non-empty blocks from before, say
    const fake: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        const m = /^\/blocks\/(\d+)$/.exec(req.url ?? '');
        res.setHeader('content-type', 'application/json');
        if (req.method === 'POST' && m) {
          const id = Number(m[1]);
          creates.push({ id, body: JSON.parse(body) as BlockCreate });
          if (holds.has(id)) {
            res.statusCode = 409;
            res.end(JSON.stringify({ error: { code: 'UGCFS_ERR_CONFLICT', message: `block ${id} exists and is not empty` } }));
            return;
          }
          holds.add(id);
          res.statusCode = 201;
          res.end(JSON.stringify({ id, size: 0, liveCount: 0, liveBytes: 0, deletedBytes: 0, sealed: false, readonly: false, gen: 0 }));
          return;
        }
        res.statusCode = 404;
        res.end('{}');
      });
    });
    await new Promise<void>((r) => fake.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(fake.address() as { port: number }).port}`;
    let cluster: string | undefined;
    const replies: HeartbeatReply[] = [];
    // Its blocks are reported only once the block is made: a report of them would move the
    // sequence of this fresh state past them before the creation (that rule is tested
    // elsewhere), and here the creation must meet them.
    let report = false;
    const beat = async () => {
      const hb: Heartbeat = {
        id: 'ds-fake', url, rack: '', freeBytes: 1e12, usedBytes: 0, blockSize: 1 << 20,
        blocks: report ? [...holds].map((id) => ({ id, size: 4096, liveCount: 1, liveBytes: 4000, deletedBytes: 0, sealed: false, readonly: false, gen: 0 })) : [],
        ...(cluster ? { cluster } : {}),
      };
      const r = await callJson<HeartbeatReply>(c.nameserver.url + NS_ROUTES.heartbeat, { method: 'POST', body: hb, secret: c.secret });
      cluster ??= r.cluster;
      replies.push(r);
    };
    await beat();
    expect(cluster).toMatch(/^c-/);
    const timer = setInterval(() => void beat().catch(() => undefined), 100);
    try {
      const a = await callJson<AssignResult>(c.nameserver.url + NS_ROUTES.assign, { method: 'POST', body: { replicas: 1 }, secret: c.secret });
      expect(decodeFid(a.fid).block).toBe(3);
      expect(creates.map((x) => x.id)).toEqual([1, 2, 3]);
      expect(creates[2]!.body).toMatchObject({ replicas: [], cluster, state: expect.stringMatching(/^s-/), leasedUpTo: { blockIds: expect.any(String), keys: expect.any(String) } });
      // later beats report 1, 2 (not ours) and 3 (ours): 1 and 2 are never ordered removed
      report = true;
      const seen = replies.length;
      await waitFor('three more beats', () => replies.length >= seen + 3, 10_000, 50);
      for (const r of replies) expect(r.commands.filter((cmd) => cmd.kind === 'delete-block')).toEqual([]);
      expect(c.nameserver.lines.filter((l) => l.includes('block id is taken')).length).toBe(2);
      await expect(callJson(c.nameserver.url + NS_ROUTES.block.replace(':id', '1'), { secret: c.secret })).rejects.toMatchObject({ code: 'UGCFS_ERR_BLOCK_NOT_FOUND' });
      // more assigns keep to block 3 or above
      for (let i = 0; i < 5; i++) {
        const more = await callJson<AssignResult>(c.nameserver.url + NS_ROUTES.assign, { method: 'POST', body: { replicas: 1 }, secret: c.secret });
        expect(decodeFid(more.fid).block).toBeGreaterThanOrEqual(3);
      }
    } finally {
      clearInterval(timer);
      fake.close();
    }
  });
});
