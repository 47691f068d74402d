// The name-server client's choice of server when several are listed, against stand-in name
// servers on loopback that answer as a leader, a standby or a server in trouble would
// (the real leader election is tested with real name servers in test/ha/). What is checked:
// 421s are followed (by their `leader`, else GET /leader), no-quorum is the caller's at once,
// a call made 'once' is not sent twice after an ambiguous failure, reads fail over.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NameserverClient } from '../../src/clients/nameserver-client.ts';
import { freePort } from '../helpers/cluster.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

interface Fake {
  url: string;
  /** "METHOD /path" of every request */
  seen: string[];
  handle: Handler;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function fake(handle: Handler): Promise<Fake> {
  const f: Fake = { url: '', seen: [], handle };
  const s = createServer((req, res) => {
    f.seen.push(`${req.method} ${req.url!.split('?')[0]}`);
    req.resume().on('end', () => f.handle(req, res));
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  f.url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return f;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const ASSIGNED = { fid: '1,0000000000000001aabbccdd', block: 1, replicas: [] };
const notLeader = (leader: string | null) => ({ error: { code: 'UGCFS_ERR_NOT_LEADER', message: 'standby', leader } });

/** A leader: answers everything; GET /leader names itself. */
const leader = (self: () => string, epoch = 7): Handler => (req, res) => {
  if (req.url === '/leader') return json(res, 200, { leader: self(), epoch, self: self(), role: 'leader' });
  if (req.url === '/assign') return json(res, 200, ASSIGNED);
  if (req.url!.startsWith('/blocks/')) return json(res, 200, { block: 1, replicas: [], writable: false, state: 'sealed' });
  return json(res, 200, {});
};

/** A standby: reads answered, the rest refused with 421 naming `who()`. */
const standby = (who: () => string | null): Handler => (req, res) => {
  if (req.url === '/leader') return json(res, 200, { leader: who(), epoch: 7, self: 'x', role: 'standby' });
  if (req.method === 'GET' && req.url!.startsWith('/blocks/')) return json(res, 200, { block: 1, replicas: [], writable: false, state: 'sealed' });
  return json(res, 421, notLeader(who()));
};

describe('leader calls', () => {
  it('follow a 421 to the leader it names, and then go there first', async () => {
    const l = await fake(leader(() => l.url));
    const s = await fake(standby(() => l.url));
    const ns = new NameserverClient({ nameservers: [s.url, l.url] });
    expect((await ns.assign()).fid).toBe(ASSIGNED.fid);
    expect(s.seen).toEqual(['POST /assign']);
    await ns.assign();
    expect(l.seen).toEqual(['POST /assign', 'POST /assign']);
    expect(ns.url).toBe(l.url);
  });

  it('while no leader is elected, ask GET /leader until one is, within the failover time', async () => {
    let elected: string | null = null;
    const a = await fake(standby(() => elected));
    const b = await fake(standby(() => elected));
    setTimeout(() => {
      elected = b.url;
      b.handle = leader(() => b.url, 8);
    }, 400);
    const ns = new NameserverClient({ nameservers: [a.url, b.url], failoverMs: 5000 });
    expect((await ns.assign()).block).toBe(1);
    expect(b.seen).toContain('GET /leader');
    expect(b.seen.at(-1)).toBe('POST /assign');
  });

  it('a dead leader: the next one is found and the write goes on', async () => {
    const gone = `http://127.0.0.1:${await freePort()}`;
    const l = await fake(leader(() => l.url));
    const ns = new NameserverClient({ nameservers: [gone, l.url] });
    await ns.reportDelete('1,0000000000000001aabbccdd', []);
    expect(l.seen).toEqual(['GET /leader', 'POST /deletes']);
  });

  it('give up after the failover time: UNAVAILABLE, never a 421 passed on', async () => {
    const a = await fake(standby(() => null));
    const b = await fake(standby(() => null));
    const ns = new NameserverClient({ nameservers: [a.url, b.url], failoverMs: 600 });
    const t = Date.now();
    const err = await ns.assign().catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE', cause: { code: 'UGCFS_ERR_NOT_LEADER' } });
    expect(Date.now() - t).toBeLessThan(3000);
  });

  it('no quorum is the caller\'s at once; a 503 from the leader itself too', async () => {
    const l = await fake((req, res) => json(res, 503, { error: { code: 'UGCFS_ERR_NO_QUORUM', message: 'etcd' } }));
    const other = await fake(leader(() => other.url));
    const ns = new NameserverClient({ nameservers: [l.url, other.url] });
    await expect(ns.assign()).rejects.toMatchObject({ code: 'UGCFS_ERR_NO_QUORUM' });
    expect(other.seen).toEqual([]);
    const busy = await fake((req, res) => (req.url === '/leader' ? leader(() => busy.url)(req, res) : json(res, 503, { error: { code: 'UGCFS_ERR_UNAVAILABLE', message: 'no writable block' } })));
    const ns2 = new NameserverClient({ nameservers: [busy.url, other.url] });
    await expect(ns2.assign()).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' });
    expect(other.seen.filter((s) => s !== 'GET /leader')).toEqual([]);
  });

  it('a call made once is not sent again after a timeout', async () => {
    const hung = await fake(() => {});
    const l = await fake(leader(() => l.url));
    const ns = new NameserverClient({ nameservers: [hung.url, l.url], timeoutMs: 300, failoverMs: 2000 });
    await expect(ns.startOperation({ kind: 'verify' })).rejects.toMatchObject({ code: 'UGCFS_ERR_TIMEOUT' });
    expect(l.seen.filter((s) => s.startsWith('POST'))).toEqual([]);
  });
});

describe('reads and one server', () => {
  it('a read fails over to the next server on no answer, and a 404 is an answer', async () => {
    const gone = `http://127.0.0.1:${await freePort()}`;
    const s = await fake((req, res) => (req.url!.startsWith('/blocks/9') ? json(res, 404, { error: { code: 'UGCFS_ERR_BLOCK_NOT_FOUND', message: 'no' } }) : standby(() => null)(req, res)));
    const other = await fake(leader(() => other.url));
    const ns = new NameserverClient({ nameservers: [gone, s.url, other.url] });
    expect((await ns.locate(1)).state).toBe('sealed');
    await expect(ns.locate(9)).rejects.toMatchObject({ code: 'UGCFS_ERR_BLOCK_NOT_FOUND' });
    expect(other.seen).toEqual([]);
  });

  it('one server listed: no GET /leader, no retry, the same error', async () => {
    const a = await fake((req, res) => json(res, 503, { error: { code: 'UGCFS_ERR_UNAVAILABLE', message: 'no writable block' } }));
    const ns = new NameserverClient({ nameservers: a.url });
    await expect(ns.assign()).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE', message: 'no writable block' });
    expect(a.seen).toEqual(['POST /assign']);
    const gone = new NameserverClient({ nameservers: `http://127.0.0.1:${await freePort()}` });
    await expect(gone.assign()).rejects.toMatchObject({ code: 'UGCFS_ERR_UPSTREAM' });
  });

  it('one server listed, electing itself (421, leader null): waited out until it leads, else 503 at the deadline', async () => {
    let leadsAt = Date.now() + 400;
    const a = await fake((req, res) => (Date.now() >= leadsAt ? leader(() => a.url)(req, res) : standby(() => null)(req, res)));
    const ns = new NameserverClient({ nameservers: a.url, failoverMs: 2000 });
    expect((await ns.assign()).fid).toBe(ASSIGNED.fid);
    expect(a.seen.filter((s) => s === 'POST /assign').length).toBeGreaterThan(1);
    leadsAt = Infinity;
    const t0 = Date.now();
    await expect(ns.assign()).rejects.toMatchObject({ code: 'UGCFS_ERR_UNAVAILABLE' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1900);
  });

  it('nameservers(): each listed server, down ones too; an older build without /leader is role null', async () => {
    const gone = `http://127.0.0.1:${await freePort()}`;
    const old = await fake((req, res) => json(res, 404, { error: { code: 'UGCFS_ERR_ROUTE_NOT_FOUND', message: 'no route' } }));
    const l = await fake(leader(() => l.url, 12));
    const ns = new NameserverClient({ nameservers: [gone, old.url, l.url] });
    expect(await ns.nameservers()).toEqual([
      { url: gone, role: null, epoch: 0, alive: false },
      { url: old.url, role: null, epoch: 0, alive: true },
      { url: l.url, role: 'leader', epoch: 12, alive: true },
    ]);
    expect((await new NameserverClient({ nameservers: [gone, l.url] }).leader()).role).toBe('leader');
  });
});
