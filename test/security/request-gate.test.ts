// Safe by default, items 2 and 3 of issue 23 (docs/SECURITY.md, "Requests: routing,
// authentication, limits and hosts"), on real processes:
//   - a big body sent to a route that does not exist, or to an internal route without the
//     secret, is refused before it is read: the answer comes while the client has sent a few
//     bytes, the connection is closed, and 20 floods of 24 MB leave each server's memory flat
//     while /healthz answers throughout;
//   - a body over a route's limit is refused on its Content-Length;
//   - slow headers and slow bodies are cut by the timeouts; connections over the cap are
//     closed while an open one still answers;
//   - a foreign Host reaches nothing (421 UGCFS_ERR_BAD_HOST), on fastify's routes and those
//     answered ahead of it; loopback names, IP addresses and --allowed-hosts do.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import { DS_ROUTES, NS_ROUTES } from '../../src/wire/protocol.ts';
import { PEER_ROUTES } from '../../origin/peer-ring.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { CORPUS, start, tempDir, TEST_SECRET, waitFor, type Proc } from '../helpers/proc.ts';
import { flood, open, partialBody, readAnswer, rssOf, target } from './raw-http.ts';

const MB24 = 24 * 1024 * 1024;

describe('requests are routed, authenticated and sized before their body is read', () => {
  let cluster: Cluster;
  let origin: Proc;
  let fid = '';
  let block = 0;
  let auth = '';
  const dirs: Array<{ cleanup: () => void }> = [];

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 1, replicas: 1, racks: [''], origin: true });
    origin = cluster.origin!;
    // uploads need a token, loopback included: the one the test cluster gives its origin
    auth = `Bearer ${cluster.uploadToken}`;
    const photo = readFileSync(join(CORPUS, 'photos', 'LadyBird.jpg'));
    const up = await fetch(`${origin.url}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization: auth }, body: photo });
    expect(up.status).toBe(201);
    fid = ((await up.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
    block = decodeFid(fid).block;
  }, 120_000);

  afterAll(async () => {
    await cluster?.stop();
    for (const d of dirs) d.cleanup();
  });

  it('answers an unrouted or unauthenticated big body after a few bytes of it, and closes', async () => {
    const ds = cluster.dataservers[0]!.url;
    const ns = cluster.nameserver.url;
    const cases: Array<[string, string, string, number, string]> = [
      [ds, 'POST', '/no/such/route', 404, 'UGCFS_ERR_ROUTE_NOT_FOUND'],
      [ds, 'POST', DS_ROUTES.blockReadonly.replace(':id', String(block)), 401, 'UGCFS_ERR_UNAUTHORIZED'],
      // a needle write is answered ahead of fastify: the same rule
      [ds, 'PUT', `/needles/${fid}`, 401, 'UGCFS_ERR_UNAUTHORIZED'],
      [ns, 'POST', '/no/such/route', 404, 'UGCFS_ERR_ROUTE_NOT_FOUND'],
      [ns, 'POST', NS_ROUTES.heartbeat, 401, 'UGCFS_ERR_UNAUTHORIZED'],
      [ns, 'PUT', NS_ROUTES.legacy, 401, 'UGCFS_ERR_UNAUTHORIZED'],
      [origin.url, 'POST', '/no/such/route', 404, 'UGCFS_ERR_ROUTE_NOT_FOUND'],
      [origin.url, 'POST', PEER_ROUTES.purge, 401, 'UGCFS_ERR_UNAUTHORIZED'],
      // an upload without a token, loopback or not
      [origin.url, 'POST', '/upload', 401, 'UGCFS_ERR_UNAUTHORIZED'],
    ];
    for (const [url, method, path, status, code] of cases) {
      const a = await partialBody(url, method, path, { 'Content-Type': 'application/json' }, MB24, '{"fid":');
      const what = `${method} ${path} on ${url}`;
      expect(a, what).toBeDefined();
      expect(a!.status, what).toBe(status);
      expect(JSON.parse(a!.body).error.code, what).toBe(code);
      // answered with 7 of 25,165,824 bytes sent, and the rest is not waited for
      expect(a!.sent, what).toBe(7);
      expect(a!.headers.connection, what).toBe('close');
      expect(a!.closed, what).toBe(true);
    }
  });

  it('refuses a body over the route limit on its Content-Length (413), before reading it', async () => {
    const ds = cluster.dataservers[0]!.url;
    const secret = { 'X-Ugcfs-Secret': cluster.secret, 'Content-Type': 'application/json' };
    // fastify routes take 64 KiB unless they declare more
    const small = await partialBody(ds, 'POST', DS_ROUTES.blockReadonly.replace(':id', String(block)), secret, 65 * 1024, '{');
    expect(small!.status).toBe(413);
    expect(JSON.parse(small!.body).error.code).toBe('UGCFS_ERR_TOO_LARGE');
    expect(small!.closed).toBe(true);
    // the origin's upload takes --max-upload-bytes (25 MiB by default), not more
    const up = await partialBody(origin.url, 'POST', '/upload', { 'Content-Type': 'image/jpeg', Authorization: auth }, 26 * 1024 * 1024, 'x');
    expect(up!.status).toBe(413);
    expect(JSON.parse(up!.body).error.code).toBe('UGCFS_ERR_TOO_LARGE');
    // a heartbeat with many blocks still fits the name server's heartbeat route (16 MiB)
    const hb = await partialBody(cluster.nameserver.url, 'POST', NS_ROUTES.heartbeat, secret, 2 * 1024 * 1024, '{', 2000);
    expect(hb).toBeUndefined(); // still waiting for the body: nothing answered, nothing closed within the wait
  }, 30_000);

  it('keeps every server\'s memory flat under 20 floods of 24 MB, /healthz answering throughout', async () => {
    const targets: Array<[string, Proc, string]> = [
      ['data server', cluster.dataservers[0]!, DS_ROUTES.blockReadonly.replace(':id', String(block))],
      ['name server', cluster.nameserver, NS_ROUTES.heartbeat],
      ['origin', origin, PEER_ROUTES.purge],
    ];
    for (const [name, proc, internal] of targets) {
      for (let i = 0; i < 3; i++) expect((await fetch(`${proc.url}/healthz`)).status).toBe(200);
      const before = rssOf(proc.child.pid!);
      let healthy = 0;
      let floodsDone = false;
      const health = (async () => {
        while (!floodsDone) {
          const r = await fetch(`${proc.url}/healthz`);
          expect(r.status, `${name} /healthz`).toBe(200);
          healthy++;
          await new Promise((res) => setTimeout(res, 50));
        }
      })();
      const floods = await Promise.all(Array.from({ length: 20 }, (_, i) => flood(proc.url, 'POST', i % 2 === 0 ? '/no/such/route' : internal, {}, MB24)));
      floodsDone = true;
      await health;
      const after = rssOf(proc.child.pid!);
      // each was answered 401 or 404, or cut off (the answer lost to the reset of a connection
      // closed with the client still sending), long before its 24 MB were sent
      for (const f of floods) {
        if (f.status === 0) expect(f.written, name).toBeLessThan(MB24 / 2);
        else expect([401, 404], name).toContain(f.status);
      }
      expect(healthy, name).toBeGreaterThan(0);
      const answered = floods.filter((f) => f.status !== 0).length;
      console.log(`${name}: RSS ${(before / 2 ** 20).toFixed(0)} -> ${(after / 2 ** 20).toFixed(0)} MiB; floods answered ${answered}, cut ${floods.length - answered}; /healthz answered ${healthy} times`);
      // 20 bodies of 24 MB read (let alone parsed) would be half a gigabyte
      expect(after - before, `${name}: RSS ${before} -> ${after}`).toBeLessThan(64 * 1024 * 1024);
    }
  }, 120_000);

  it('refuses a foreign Host on every server, fastify\'s routes and those ahead of it alike, and does nothing', async () => {
    const ds = cluster.dataservers[0]!.url;
    const secret = { 'x-ugcfs-secret': cluster.secret };
    const evil = async (url: string, method: string, path: string, headers: Record<string, string> = {}) => {
      const s = await open(url);
      const answered = readAnswer(s, () => 0, 1000);
      s.write([`${method} ${path} HTTP/1.1`, 'Host: evil.test', 'Content-Length: 0', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n') + '\r\n\r\n');
      const a = (await answered)!;
      s.destroy();
      return { status: a.status, code: JSON.parse(a.body).error.code as string };
    };
    const refused = { status: 421, code: 'UGCFS_ERR_BAD_HOST' };
    expect(await evil(ds, 'DELETE', DS_ROUTES.block.replace(':id', String(block)), secret)).toEqual(refused);
    expect(await evil(ds, 'GET', `/needles/${fid}`, secret)).toEqual(refused);
    expect(await evil(ds, 'DELETE', `/needles/${fid}`, secret)).toEqual(refused);
    expect(await evil(ds, 'GET', '/healthz')).toEqual(refused);
    expect(await evil(cluster.nameserver.url, 'GET', NS_ROUTES.status, secret)).toEqual(refused);
    expect(await evil(origin.url, 'DELETE', `/${fid}`)).toEqual(refused);
    expect(await evil(origin.url, 'GET', `/${fid}`)).toEqual(refused);
    expect(await evil(origin.url, 'POST', PEER_ROUTES.purge, { ...secret, 'content-type': 'application/json' })).toEqual(refused);
    // nothing happened: the block and the file are there, through the loopback names
    const { port } = target(ds);
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `[::1]:${port}`]) {
      const r = await request(`${ds}${DS_ROUTES.block.replace(':id', String(block))}`, { headers: { ...secret, host } });
      await r.body.dump();
      expect(r.statusCode, host).toBe(200);
    }
    expect((await fetch(`${ds}/needles/${fid}`, { headers: secret })).status).toBe(200);
    const read = await request(`${origin.url}/${fid}`, { headers: { host: `localhost:${target(origin.url).port}` } });
    await read.body.dump();
    expect(read.statusCode).toBe(200);
  });

  it('--allowed-hosts adds names; timeouts cut slow headers and bodies; the connection cap closes the surplus', async () => {
    const t = tempDir('ugcfs-gate-');
    dirs.push(t);
    const common = ['dataserver', '--nameserver', 'http://127.0.0.1:9', '--port', '0'];
    const [limited, capped] = await Promise.all([
      start([...common, '--data', join(t.dir, 'a'), '--allowed-hosts', 'images.example,ds.internal', '--headers-timeout-ms', '1500', '--request-timeout-ms', '3000']),
      start([...common, '--data', join(t.dir, 'b'), '--max-connections', '4']),
    ]);
    try {
      const host = async (url: string, h: string) => {
        const r = await request(`${url}/healthz`, { headers: { host: h } });
        await r.body.dump();
        return r.statusCode;
      };
      expect(await host(limited.url, 'images.example')).toBe(200);
      expect(await host(limited.url, 'DS.Internal:7001')).toBe(200);
      expect(await host(limited.url, '10.1.2.3:7001')).toBe(200); // an address is no rebinding name
      expect(await host(limited.url, 'other.example')).toBe(421);
      expect(await host(capped.url, 'images.example')).toBe(421);

      // slow headers: one header line a second, never finished
      const slowHead = await open(limited.url);
      const headAnswer = readAnswer(slowHead, () => 0, 30_000);
      slowHead.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n');
      const dribble = setInterval(() => slowHead.writable && slowHead.write('X-Slow: 1\r\n'), 1000);
      // slow body: a byte a second of a declared 100
      const slowBody = await open(limited.url);
      const bodyAnswer = readAnswer(slowBody, () => 0, 30_000);
      // with the secret (else it is refused on its headers, before the body)
      slowBody.write(`POST /blocks/1/readonly HTTP/1.1\r\nHost: localhost\r\nX-Ugcfs-Secret: ${TEST_SECRET}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`);
      const trickle = setInterval(() => slowBody.writable && slowBody.write(' '), 1000);
      const closed = (s: typeof slowHead) => new Promise<void>((r) => (s.destroyed ? r() : s.once('close', () => r())));
      await Promise.all([closed(slowHead), closed(slowBody)]);
      clearInterval(dribble);
      clearInterval(trickle);
      for (const a of [await headAnswer, await bodyAnswer]) if (a) expect(a.status).toBe(408);
      expect((await fetch(`${limited.url}/healthz`)).status).toBe(200);

      // the cap: one keep-alive connection in use, three idle, the fifth is closed at once
      const kept = await open(capped.url);
      const ask = async () => {
        const a = readAnswer(kept, () => 0, 200);
        kept.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
        return (await a)?.status;
      };
      expect(await ask()).toBe(200);
      const idle = await Promise.all([1, 2, 3].map(() => open(capped.url)));
      await waitFor('the server to count them', async () => {
        const surplus = await open(capped.url);
        const gone = await new Promise<boolean>((r) => {
          surplus.once('close', () => r(true));
          surplus.on('error', () => undefined);
          surplus.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
          setTimeout(() => r(false), 1000);
        });
        surplus.destroy();
        return gone;
      });
      expect(await ask()).toBe(200);
      for (const s of [kept, ...idle]) s.destroy();
    } finally {
      await Promise.all([limited.kill(), capped.kill()]);
    }
  }, 120_000);
});
