// --access-log: one line per answered request, whichever path answered it (fastify routes
// and the routes served ahead of fastify), and none without the flag.
import { randomBytes } from 'node:crypto';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { NS_ROUTES } from '../../src/wire/protocol.ts';
import { startCluster } from '../helpers/cluster.ts';
import { start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';

const SECRET = `access-secret-${randomBytes(16).toString('hex')}`;
const tmp = tempDir('ugcfs-access-');
const procs: Proc[] = [];
afterAll(async () => {
  await Promise.all(procs.map((p) => p.kill('SIGKILL')));
  tmp.cleanup();
});

type Line = { msg?: string; method?: string; url?: string; status?: number; ms?: number; bytes?: number; reqId?: string };
const requestLines = (p: Proc): Line[] =>
  p.lines.flatMap((l) => {
    try {
      const j = JSON.parse(l) as Line;
      return j.msg === 'request' ? [j] : [];
    } catch {
      return [];
    }
  });

describe('access log', () => {
  it('logs method, url, status, time, bytes and request id for answered and refused requests; nothing without the flag', async () => {
    const on = await start(['nameserver', '--data', `${tmp.dir}/on`, '--port', '0', '--access-log'], { env: { UGCFS_CLUSTER_SECRET: SECRET } });
    const off = await start(['nameserver', '--data', `${tmp.dir}/off`, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: SECRET } });
    procs.push(on, off);
    for (const ns of [on, off]) {
      expect((await callRaw(ns.url + '/healthz', { headers: { 'x-request-id': 'probe-1' } })).status).toBe(200);
      expect((await callRaw(ns.url + NS_ROUTES.status)).status).toBe(401);
    }
    const lines = await waitFor('two access lines', () => (requestLines(on).length >= 2 ? requestLines(on) : undefined), 5000, 50);
    expect(lines[0]).toMatchObject({ method: 'GET', url: '/healthz', status: 200, reqId: 'probe-1' });
    expect(lines[0]!.bytes).toBeGreaterThan(0);
    expect(typeof lines[0]!.ms).toBe('number');
    expect(lines[1]).toMatchObject({ method: 'GET', url: NS_ROUTES.status, status: 401 });
    expect(requestLines(off)).toEqual([]);
  });

  it('covers the routes answered ahead of fastify: data-server reads and writes, origin memory hits', async () => {
    const c = await startCluster({ dataservers: 2, replicas: 2, racks: [''], dataserverArgs: ['--access-log'] });
    try {
      const origin = await start(['origin', '--nameserver', c.nameserver.url, '--port', '0', '--access-log'], { env: { UGCFS_CLUSTER_SECRET: c.secret } });
      procs.push(origin);
      const w = await c.client.write(Buffer.alloc(1234, 7), { mime: 'application/octet-stream' });
      await c.client.read(w.fid);
      const dsLines = () => c.dataservers.flatMap((ds) => requestLines(ds));
      await waitFor('data-server access lines', () => dsLines().some((l) => l.method === 'GET') || undefined, 5000, 50);
      expect(dsLines()).toEqual(expect.arrayContaining([
        expect.objectContaining({ method: 'PUT', url: `/needles/${w.fid}`, status: 201 }),
        expect.objectContaining({ method: 'GET', url: `/needles/${w.fid}`, status: 200, bytes: 1234 }),
      ]));

      for (let i = 0; i < 2; i++) await (await request(`${origin.url}/${w.fid}`, { headers: { 'x-request-id': `hit-${i}` } })).body.dump();
      // the first GET is a miss (fastify route), the second a memory hit (the lean path)
      const hits = await waitFor('origin access lines', () => (requestLines(origin).length >= 2 ? requestLines(origin) : undefined), 5000, 50);
      expect(hits.map((l) => [l.reqId, l.status, l.bytes])).toEqual([['hit-0', 200, 1234], ['hit-1', 200, 1234]]);
    } finally {
      await c.stop();
    }
  });
});
