// Heartbeats under name-server high availability (dataserver/heartbeat.ts), on real processes:
// - a data server that has seen a higher epoch (on a command) refuses the replies of today's
//   single name server (no epoch: 0): the extra-copy delete it asks for is not done, while a
//   data server that saw no higher epoch does it;
// - a data server beats every listed name server: a dead one in the list only logs, once,
//   and the live one's commands are done;
// - a standby's reply runs nothing and stores nothing; a leader's higher epoch is stored
//   before its commands run, and a lower one is refused (a name server on loopback that
//   answers as the test says, as the cluster-identity tests use).
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { DS_ROUTES, HEADERS, type BlockReport, type Heartbeat, type HeartbeatReply } from '../../src/wire/protocol.ts';
import { decodeEpochFile } from '../../dataserver/epoch-fence.ts';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';

const clusters: Cluster[] = [];
const procs: Proc[] = [];
const servers: Server[] = [];
const tmp = tempDir('ugcfs-epoch-hb-');
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  await Promise.all(clusters.map((c) => c.stop()));
  for (const s of servers) s.close();
  tmp.cleanup();
});

const blockPath = (id: number) => DS_ROUTES.block.replace(':id', String(id));
const logLines = (p: Proc, msg: string) => p.lines.filter((l) => l.includes(msg));

describe('a data server beating today\'s single name server', () => {
  it('refuses its commands once it has seen a higher epoch, and beats every listed name server', async () => {
    const c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 1 });
    clusters.push(c);
    await c.waitForAlive();
    const w = await c.client.write(randomBytes(4000));
    const block = decodeFid(w.fid).block;
    const holder = w.replicas[0]!.url;
    const [fenced, control] = c.dataservers.filter((d) => d.url !== holder);
    const pull = (ds: Proc, headers: Record<string, string>) =>
      callRaw(ds.url + DS_ROUTES.blockPull.replace(':id', String(block)), { method: 'POST', body: { from: holder }, secret: c.secret, headers });
    // An extra copy on each: one pulled by a command of epoch 5 (a leader this name server is not)
    expect((await pull(fenced!, { [HEADERS.epoch]: '5' })).status).toBe(200);
    expect((await pull(control!, {})).status).toBe(200);

    // The name server asks both to drop their extra copy: the control does, at once
    await waitFor('the control data server to drop its extra copy', async () => (await callRaw(control!.url + blockPath(block), { secret: c.secret })).status === 404);
    // the fenced one refuses every reply of epoch 0 (counted), keeps the copy, logs it once
    await waitFor('replies refused', async () => (await metric(fenced!.url, 'ugcfs_fenced_requests_total', { source: 'heartbeat' })) >= 5);
    const kept = await callRaw(fenced!.url + blockPath(block), { secret: c.secret });
    expect(kept.status).toBe(200);
    expect((JSON.parse(kept.body.toString()) as BlockReport).id).toBe(block);
    expect(logLines(fenced!, 'no longer leads')).toHaveLength(1);
    expect(logLines(fenced!, 'quarantined block on name server request')).toHaveLength(0);
    await waitFor('the control\'s log line', () => logLines(control!, 'quarantined block on name server request').length === 1);

    // A data server listing a dead name server before the real one: it registers, takes
    // writes, and the dead one is logged once
    const dead = `http://127.0.0.1:${await freePort()}`;
    const ds = await start(['dataserver', '--data', join(tmp.dir, 'ds-x'), '--id', 'ds-x', '--nameserver', `${dead},${c.nameserver.url}`, '--port', '0', '--rack', 'a', '--heartbeat-ms', '100', '--fsync=false'], { env: { UGCFS_CLUSTER_SECRET: c.secret } });
    procs.push(ds);
    await c.waitFor((s) => s.dataservers.some((d) => d.id === 'ds-x' && d.alive), 'ds-x alive');
    // its replies are acted on: an extra copy pulled there is dropped on the name server's word
    expect((await pull(ds, {})).status).toBe(200);
    await waitFor('ds-x to drop its extra copy', async () => (await callRaw(ds.url + blockPath(block), { secret: c.secret })).status === 404);
    await waitFor('ds-x\'s log line', () => logLines(ds, 'quarantined block on name server request').length === 1);
    await new Promise((r) => setTimeout(r, 500));
    const failed = ds.lines.filter((l) => l.includes('heartbeat failed'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(dead);
    expect(ds.lines.some((l) => l.includes('heartbeat failed') && l.includes(c.nameserver.url))).toBe(false);
  });
});

/** A name server on loopback that answers every beat with `answer()`, and counts the beats. */
async function stubNameserver(answer: () => Partial<HeartbeatReply>): Promise<{ url: string; beats: () => number }> {
  let beats = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      JSON.parse(body) as Heartbeat;
      beats++;
      const reply = JSON.stringify({ ok: true, commands: [], state: 's-0123456789abcdef', now: Date.now(), leasedUpTo: { blockIds: '0', keys: '0' }, ...answer() });
      res.writeHead(200, { 'content-type': 'application/json' }).end(reply);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}`, beats: () => beats };
}

describe('a data server beating a leader and a standby', () => {
  it('takes commands and a higher epoch from the leader only, and refuses a lower epoch', async () => {
    const cluster = 'c-00000000000000aa';
    const secret = randomBytes(24).toString('hex');
    let leaderEpoch = 9;
    const readonly = (block: number) => [{ kind: 'readonly' as const, block, readonly: true }];
    // the standby asks for block 1 read-only, with a time far off and high lease ends
    const standby = await stubNameserver(() => ({ cluster, role: 'standby', epoch: 12, commands: readonly(1), now: Date.now() + 3_600_000, leasedUpTo: { blockIds: '777', keys: '777' } }));
    const leader = await stubNameserver(() => ({ cluster, role: 'leader', epoch: leaderEpoch, commands: readonly(2) }));
    const dir = join(tmp.dir, 'ds-y');
    const ds = await start(['dataserver', '--data', dir, '--nameserver', `${standby.url},${leader.url}`, '--port', '0', '--heartbeat-ms', '100', '--fsync=false'], { env: { UGCFS_CLUSTER_SECRET: secret } });
    procs.push(ds);
    const call = (path: string, body?: unknown, headers: Record<string, string> = {}) => callRaw(ds.url + path, { method: body === undefined ? 'GET' : 'POST', body, secret, headers });
    // blocks created by an operator's call (no epoch)
    for (const id of [1, 2]) expect((await call(blockPath(id), {})).status).toBe(201);
    const isReadonly = async (id: number) => (JSON.parse((await call(blockPath(id))).body.toString()) as BlockReport).readonly;

    await waitFor('the leader\'s command done', () => isReadonly(2));
    expect(decodeEpochFile(readFileSync(join(dir, 'epoch')))).toBe(9);
    const beatsBefore = standby.beats();
    await waitFor('more standby beats', () => standby.beats() >= beatsBefore + 3);
    expect(await isReadonly(1)).toBe(false);
    const health = (await (await fetch(ds.url + '/healthz')).json()) as { epoch: number; cluster: string };
    expect(health).toMatchObject({ epoch: 9, cluster });
    // nothing the standby said was stored: not its epoch, not its lease ends
    const clusterFile = readFileSync(join(dir, 'cluster'), 'latin1');
    expect(clusterFile).not.toContain('777');

    // the leader's epoch falls below one seen (a command of epoch 10): its replies are refused
    expect((await call(blockPath(3), {}, { [HEADERS.epoch]: '10' })).status).toBe(201);
    leaderEpoch = 8;
    await waitFor('replies refused', async () => (await metric(ds.url, 'ugcfs_fenced_requests_total', { source: 'heartbeat' })) >= 3);
    expect((await call(blockPath(2) + '/readonly', { readonly: false })).status).toBe(200);
    const n = leader.beats();
    await waitFor('more leader beats', () => leader.beats() >= n + 3);
    expect(await isReadonly(2)).toBe(false);
    // logged once (a reply of epoch 9 already on its way may have been refused too, and logged so)
    expect(logLines(ds, 'leader of epoch 8, below epoch 10 seen here: it no longer leads')).toHaveLength(1);
    expect(await metric(ds.url, 'ugcfs_epoch_highest_seen')).toBe(10);
    expect(existsSync(join(dir, 'epoch'))).toBe(true);
  });
});
