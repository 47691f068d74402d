// Nothing is let in: every internal route of the data server and name server (every entry
// of DS_ROUTES and NS_ROUTES in src/wire/protocol.ts, with every method each answers) and the
// origins' peer routes refuse callers without the cluster secret, or with a wrong one, and
// change nothing. Sellers cannot delete each other's files; no token or secret reaches a
// log line. No address is trusted (issue "Safe by default"): an anonymous purge of an origin,
// an anonymous block delete on a data server and an upload without a token are refused from
// loopback too, also through a same-host proxy; and no role starts without a cluster secret
// of 32 characters or more that is not an example value, nor an origin with a short token.
import { randomBytes } from 'node:crypto';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { encodeFid } from '../../src/wire/file-id.ts';
import { DS_ROUTES, NS_ROUTES, type BlockReport } from '../../src/wire/protocol.ts';
import { PEER_ROUTES } from '../../origin/peer-ring.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { run, start, tempDir, type Proc } from '../helpers/proc.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';

/** Methods each route answers (protocol.ts comments); a route missing here fails the coverage check below. */
const DS_METHODS: Record<keyof typeof DS_ROUTES, Method[]> = {
  needle: ['PUT', 'GET', 'HEAD', 'DELETE'],
  blockNeedles: ['POST'],
  blocks: ['GET'],
  block: ['GET', 'POST', 'DELETE'],
  blockData: ['GET'],
  blockPull: ['POST'],
  blockReadonly: ['POST'],
  blockCompact: ['POST'],
  blockScrub: ['POST'],
  blockKeys: ['GET'],
  quarantine: ['GET'],
  quarantineItem: ['DELETE'],
};
const NS_METHODS: Record<keyof typeof NS_ROUTES, Method[]> = {
  heartbeat: ['POST'],
  assign: ['POST'],
  block: ['GET'],
  blockWriteFailed: ['POST'],
  blockMissedDeletes: ['POST'],
  deletes: ['POST', 'GET'],
  dataservers: ['GET'],
  dataserver: ['GET', 'DELETE'],
  status: ['GET'],
  legacy: ['GET', 'PUT', 'DELETE'],
  quota: ['GET', 'POST'],
  ops: ['POST', 'GET'],
  op: ['GET', 'DELETE'],
  leader: ['GET'],
  page: ['GET'],
};
const PEER_METHODS: Record<keyof typeof PEER_ROUTES, Method[]> = {
  variant: ['GET'],
  purge: ['POST'],
};

const UPLOADER_A = `tok-a-${randomBytes(16).toString('hex')}`;
const UPLOADER_B = `tok-b-${randomBytes(16).toString('hex')}`;
const ADMIN = `adm-${randomBytes(16).toString('hex')}`;
const WRONG = `wrong-${randomBytes(16).toString('hex')}`;

describe('internal endpoints, ownership, logs and listen addresses', () => {
  let cluster: Cluster;
  let origin: Proc;
  let fid = '';
  let block = 0;
  const refused: string[] = [];
  const unserved: string[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''], adminToken: ADMIN, env: { UGCFS_LOG_LEVEL: 'debug' } });
    origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], {
      env: { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_UPLOAD_TOKENS: `${UPLOADER_A},${UPLOADER_B}`, UGCFS_ADMIN_TOKEN: ADMIN, UGCFS_LOG_LEVEL: 'trace' },
    });
    const w = await cluster.client.write(Buffer.from('a file that must survive every refused call'), { mime: 'text/plain' });
    fid = w.fid;
    block = Number(fid && (await cluster.client.stat(fid)).block);
    await cluster.client.legacySet('/old/keep.jpg', fid);
  }, 90_000);

  afterAll(async () => {
    console.log(`security: ${refused.length} route/method/credential combinations refused; not served at all: ${unserved.join(', ') || 'none'}`);
    await origin?.kill();
    await cluster?.stop();
  });

  function fill(route: string): string {
    return route.replace(':fid', fid).replace(':name', 'none').replace(':id', route.startsWith('/dataservers') ? cluster.dsIds[0]! : String(block));
  }

  function bodyFor(method: Method, name: string): Buffer | string | undefined {
    if (method === 'GET' || method === 'HEAD' || method === 'DELETE') return undefined;
    if (name === 'needle') return Buffer.from('forged bytes');
    const bodies: Record<string, unknown> = {
      heartbeat: { id: 'ds-evil', url: 'http://127.0.0.1:1', rack: '', freeBytes: 1e12, usedBytes: 0, blockSize: 1024, blocks: [] },
      assign: {},
      blockWriteFailed: { dsId: cluster.dsIds[0], reason: 'forged' },
      blockMissedDeletes: { fid, dataservers: [cluster.dsIds[0]] },
      deletes: { fid, dataservers: [cluster.dsIds[0]] },
      legacy: { path: '/old/keep.jpg', fid: encodeFid({ block: 1, key: 1n, cookie: 1 }) },
      ops: { kind: 'rebalance' },
      blockPull: { from: 'http://127.0.0.1:1' },
      blockReadonly: { readonly: true },
      purge: { fid },
      block: { replicas: [] },
    };
    return JSON.stringify(bodies[name] ?? {});
  }

  const credentials: Array<[string, Record<string, string>]> = [
    ['no credential', {}],
    ['wrong secret header', { 'x-ugcfs-secret': WRONG }],
    ['wrong bearer', { authorization: `Bearer ${WRONG}` }],
    ['an upload token', { authorization: `Bearer ${UPLOADER_A}` }],
  ];

  async function expectRefused(base: string, table: Record<string, Method[]>, routes: Record<string, string>, label: string): Promise<void> {
    expect(Object.keys(table).sort(), `${label}: every route has its methods listed`).toEqual(Object.keys(routes).sort());
    for (const [name, methods] of Object.entries(table)) {
      for (const method of methods) {
        for (const [cred, headers] of credentials) {
          const body = bodyFor(method, name);
          const ct = body === undefined ? {} : { 'content-type': name === 'needle' ? 'application/octet-stream' : 'application/json' };
          const url = base + fill(routes[name]!) + (name === 'legacy' && method !== 'PUT' ? '?path=%2Fold%2Fkeep.jpg' : '') + (name === 'variant' ? '?v=10x10.inside.auto.q0&n=0' : '');
          const res = await request(url, { method, headers: { ...headers, ...ct }, body });
          const text = await res.body.text();
          const what = `${label} ${method} ${routes[name]} with ${cred}`;
          if (res.statusCode === 404 && method !== 'HEAD' && JSON.parse(text).error?.code === 'UGCFS_ERR_ROUTE_NOT_FOUND') {
            if (!unserved.includes(`${label} ${method} ${routes[name]}`)) unserved.push(`${label} ${method} ${routes[name]}`);
            continue;
          }
          expect(res.statusCode, `${what}: ${text.slice(0, 200)}`).toBe(401);
          if (method !== 'HEAD') expect(JSON.parse(text).error.code, what).toBe('UGCFS_ERR_UNAUTHORIZED');
          refused.push(what);
        }
      }
    }
  }

  it('every data server route refuses callers without the right cluster secret', async () => {
    for (const ds of cluster.dataservers) await expectRefused(ds.url, DS_METHODS, DS_ROUTES, ds.url);
  });

  it('every name server route refuses callers without the right cluster secret (admin views: or the admin token)', async () => {
    await expectRefused(cluster.nameserver.url, NS_METHODS, NS_ROUTES, 'nameserver');
  });

  it("every origin peer route refuses callers without the right cluster secret", async () => {
    await expectRefused(origin.url, PEER_METHODS, PEER_ROUTES, 'origin');
  });

  it('the refused calls changed nothing: file, block, mapping, registry all as before', async () => {
    const got = await cluster.client.read(fid);
    expect(got.data.toString()).toBe('a file that must survive every refused call');
    for (const ds of cluster.dataservers) {
      const reports = await callJson<BlockReport[]>(ds.url + DS_ROUTES.blocks, { secret: cluster.secret });
      const r = reports.find((b) => b.id === block);
      expect(r, `block ${block} still on ${ds.url}`).toBeDefined();
      expect(r!.readonly).toBe(false);
      const forged = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), { method: 'HEAD', secret: cluster.secret });
      expect(forged.status).toBe(200);
    }
    expect(await cluster.client.legacyGet('/old/keep.jpg')).toBe(fid);
    const s = await cluster.status();
    expect(s.dataservers.map((d) => d.id).sort()).toEqual([...cluster.dsIds].sort());
    expect(s.dataservers.every((d) => d.alive)).toBe(true);
    // and the admin token opens the admin views
    const st = await request(cluster.nameserver.url + NS_ROUTES.status, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(st.statusCode).toBe(200);
    await st.body.dump();
  });

  it('sellers cannot delete each other\'s files; the uploader and the admin can', async () => {
    const img = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 9, g: 9, b: 9 } } }).png().toBuffer();
    const up = async (tok: string) => {
      const r = await request(`${origin.url}/upload`, { method: 'POST', headers: { authorization: `Bearer ${tok}`, 'content-type': 'image/png' }, body: img });
      const t = await r.body.text();
      expect(r.statusCode, t).toBe(201);
      return JSON.parse(t).files[0].fid as string;
    };
    const del = async (f: string, tok?: string) => {
      const r = await request(`${origin.url}/${f}`, { method: 'DELETE', headers: tok ? { authorization: `Bearer ${tok}` } : {} });
      const t = await r.body.text();
      return { status: r.statusCode, code: t ? (JSON.parse(t).error?.code as string | undefined) : undefined };
    };
    const get = async (f: string) => {
      const r = await request(`${origin.url}/${f}`);
      await r.body.dump();
      return r.statusCode;
    };
    const a = await up(UPLOADER_A);
    const b = await up(UPLOADER_B);
    expect(await del(a, UPLOADER_B)).toEqual({ status: 403, code: 'UGCFS_ERR_FORBIDDEN' });
    expect(await del(a)).toEqual({ status: 401, code: 'UGCFS_ERR_UNAUTHORIZED' });
    expect(await del(a, WRONG)).toEqual({ status: 401, code: 'UGCFS_ERR_UNAUTHORIZED' });
    expect(await get(a)).toBe(200);
    expect((await del(a, UPLOADER_A)).status).toBe(204);
    expect(await get(a)).toBe(404);
    expect((await del(b, ADMIN)).status).toBe(204);
    expect(await get(b)).toBe(404);
  });

  it('no token or secret appears in any log line, at trace/debug level', async () => {
    // a refused upload with a wrong token, so the refusal path has logged too
    const r = await request(`${origin.url}/upload`, { method: 'POST', headers: { authorization: `Bearer ${WRONG}`, 'content-type': 'image/png' }, body: 'x' });
    await r.body.dump();
    const lines = [...origin.lines, ...cluster.nameserver.lines, ...cluster.dataservers.flatMap((d) => d.lines)];
    expect(lines.length).toBeGreaterThan(10);
    for (const secret of [UPLOADER_A, UPLOADER_B, ADMIN, WRONG, cluster.secret]) {
      const leaked = lines.filter((l) => l.includes(secret));
      expect(leaked, `a log line holds a secret: ${leaked[0]?.slice(0, 200)}`).toEqual([]);
    }
  });

  it('an anonymous purge from loopback is refused, and the origin still serves the file from its cache', async () => {
    const f = await cluster.client.write(await sharp({ create: { width: 6, height: 6, channels: 3, background: { r: 1, g: 200, b: 3 } } }).png().toBuffer(), { mime: 'image/png' });
    const get = async () => {
      const r = await request(`${origin.url}/${f.fid}`);
      await r.body.dump();
      return [r.statusCode, r.headers['x-cache']];
    };
    await get();
    expect(await get()).toEqual([200, 'HIT']);
    const purge = await request(origin.url + PEER_ROUTES.purge, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ fid: f.fid }) });
    const text = await purge.body.text();
    expect([purge.statusCode, JSON.parse(text).error.code], text).toEqual([401, 'UGCFS_ERR_UNAUTHORIZED']);
    // not purged: still a hit in the origin's memory, not even a miss
    expect(await get()).toEqual([200, 'HIT']);
    // the same call with the secret does purge (so the check above can fail)
    const real = await request(origin.url + PEER_ROUTES.purge, { method: 'POST', headers: { 'content-type': 'application/json', 'x-ugcfs-secret': cluster.secret }, body: JSON.stringify({ fid: f.fid }) });
    await real.body.dump();
    expect(real.statusCode).toBe(204);
    expect(await get()).toEqual([404, undefined]);
  });

  it('an anonymous DELETE /blocks/<id> from loopback is refused on every data server, and the block stays', async () => {
    const f = await cluster.client.write(Buffer.from('a block that must not be deleted'), { mime: 'text/plain' });
    const id = (await cluster.client.stat(f.fid)).block;
    for (const ds of cluster.dataservers) {
      expect(new URL(ds.url).hostname).toBe('127.0.0.1');
      const r = await request(ds.url + DS_ROUTES.block.replace(':id', String(id)), { method: 'DELETE' });
      const text = await r.body.text();
      expect([r.statusCode, JSON.parse(text).error.code], text).toEqual([401, 'UGCFS_ERR_UNAUTHORIZED']);
    }
    for (const ds of cluster.dataservers) {
      const reports = await callJson<BlockReport[]>(ds.url + DS_ROUTES.blocks, { secret: cluster.secret });
      expect(reports.some((b) => b.id === id), `block ${id} still on ${ds.url}`).toBe(true);
      const copy = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', f.fid), { method: 'GET', secret: cluster.secret });
      expect(copy.status).toBe(200);
    }
    expect((await cluster.client.read(f.fid)).data.toString()).toBe('a block that must not be deleted');
  });

  it('an upload from loopback without a token is refused and stores nothing, directly or through a same-host proxy', async () => {
    const img = await sharp({ create: { width: 5, height: 5, channels: 3, background: { r: 90, g: 9, b: 9 } } }).png().toBuffer();
    const live = async () => {
      let n = 0;
      for (const ds of cluster.dataservers) n += (await callJson<BlockReport[]>(ds.url + DS_ROUTES.blocks, { secret: cluster.secret })).reduce((s, b) => s + b.liveCount, 0);
      return n;
    };
    const proxy = await startTcpProxy(Number(new URL(origin.url).port));
    try {
      const post = async (base: string, headers: Record<string, string> = {}) => {
        const r = await request(`${base}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', ...headers }, body: img });
        const t = await r.body.text();
        return { status: r.statusCode, code: JSON.parse(t).error?.code as string | undefined };
      };
      const before = await live();
      for (const base of [origin.url, proxy.url]) {
        expect(await post(base), base).toEqual({ status: 401, code: 'UGCFS_ERR_UNAUTHORIZED' });
        expect(await post(base, { authorization: `Bearer ${WRONG}` }), base).toEqual({ status: 401, code: 'UGCFS_ERR_UNAUTHORIZED' });
      }
      expect(proxy.stats.connections).toBeGreaterThan(0);
      expect(await live()).toBe(before);
      // the proxy does pass uploads: with a token one is stored (two replicas)
      expect((await post(proxy.url, { authorization: `Bearer ${UPLOADER_A}` })).status).toBe(201);
      expect(await live()).toBe(before + 2);
    } finally {
      await proxy.close();
    }
  });
});

describe('no role starts with a missing or guessable credential', () => {
  // One start per case; each must exit 2 with one line naming the option, and never listen.
  async function refusedStart(role: string, env: Record<string, string>, dir: string) {
    const args = [role, '--port', '0'];
    if (role !== 'origin') args.push('--data', `${dir}/${role}-${randomBytes(4).toString('hex')}`);
    if (role !== 'nameserver') args.push('--nameserver', 'http://127.0.0.1:9');
    const r = await run(args, { env: { UGCFS_LOG_LEVEL: 'info', ...env }, timeoutMs: 30_000 });
    return { code: r.code, out: `${r.stdout}${r.stderr}`, lines: `${r.stdout}${r.stderr}`.trim().split('\n') };
  }

  it('a missing, placeholder or 31-character cluster secret: exit 2, one line naming --cluster-secret, never listening', async () => {
    const t = tempDir();
    try {
      const secrets: Array<[string, string]> = [
        ['missing', ''],
        ['placeholder', 'change-me-cluster-secret'],
        ['31 characters', randomBytes(16).toString('hex').slice(0, 31)],
        ['a long placeholder', 'change-me-' + randomBytes(16).toString('hex')],
      ];
      for (const [what, secret] of secrets) {
        await Promise.all(
          ['nameserver', 'dataserver', 'origin'].map(async (role) => {
            const r = await refusedStart(role, { UGCFS_CLUSTER_SECRET: secret }, t.dir);
            const label = `${role} with a ${what} secret: ${r.out}`;
            expect(r.code, label).toBe(2);
            expect(r.lines, label).toHaveLength(1);
            expect(r.lines[0], label).toContain('--cluster-secret');
            expect(r.out, label).not.toMatch(/"msg":"listening"/);
            if (secret !== '') expect(r.out, label).not.toContain(secret);
          }),
        );
      }
    } finally {
      t.cleanup();
    }
  });

  it('an origin with an upload or admin token under 32 characters: exit 2, one line naming the option', async () => {
    const t = tempDir();
    try {
      const short = randomBytes(16).toString('hex').slice(0, 31);
      const cases: Array<[Record<string, string>, string]> = [
        [{ UGCFS_UPLOAD_TOKENS: short }, '--upload-tokens'],
        [{ UGCFS_UPLOAD_TOKENS: `${UPLOADER_A},${short}` }, '--upload-tokens'],
        [{ UGCFS_UPLOAD_TOKENS: UPLOADER_A, UGCFS_ADMIN_TOKEN: short }, '--admin-token'],
      ];
      await Promise.all(
        cases.map(async ([env, option]) => {
          const r = await refusedStart('origin', env, t.dir);
          const label = `${JSON.stringify(Object.keys(env))}: ${r.out}`;
          expect(r.code, label).toBe(2);
          expect(r.lines, label).toHaveLength(1);
          expect(r.lines[0], label).toContain(option);
          expect(r.out, label).not.toMatch(/"msg":"listening"/);
          expect(r.out, label).not.toContain(short);
        }),
      );
    } finally {
      t.cleanup();
    }
  });
});
