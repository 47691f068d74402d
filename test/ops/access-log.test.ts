// --access-log: one line per answered request, whichever path answered it (fastify routes
// and the routes served ahead of fastify), and none without the flag.
import { afterAll, describe, expect, it } from 'vitest';
import { callRaw } from '../../src/http-client.ts';
import { NS_ROUTES } from '../../src/protocol.ts';
import { start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';

const SECRET = 'access-secret';
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
});
