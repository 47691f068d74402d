// Several name servers listed (--nameserver a,b; a high-availability group): the clients use
// every one. Here one listed name server is a dead port and the other the cluster's real one:
// writes, reads, `ugcfs put` and `ugcfs status` go on, status shows one down and one up. While
// no name server answers at all, reads of sealed blocks go on from cached locations past
// their TTL, and a read needing a location no one can give fails typed. With one name server
// listed, the client makes no request beyond today's.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUgcfsError } from '../../src/base/errors.ts';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { NameserverStatus } from '../../src/wire/protocol.ts';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { waitFor } from '../helpers/proc.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let c: Cluster;
let dead = '';
beforeAll(async () => {
  c = await startCluster({ dataservers: 2, replicas: 2, racks: ['a', 'b'], blockSize: 256 * 1024 });
  dead = `http://127.0.0.1:${await freePort()}`;
});
afterAll(async () => {
  await c?.stop();
});

/** The name server's requests by route, heartbeats and scrapes left out. */
async function nsRequests(): Promise<Map<string, number>> {
  const m = await scrapeMetrics(c.nameserver.url);
  const out = new Map<string, number>();
  for (const s of m.samples) {
    if (s.name !== 'ugcfs_http_requests_total' || ['/ds/heartbeat', '/metrics'].includes(s.labels.route ?? '')) continue;
    const k = `${s.labels.method} ${s.labels.route}`;
    out.set(k, (out.get(k) ?? 0) + s.value);
  }
  return out;
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const d: Record<string, number> = {};
  for (const [k, v] of after) if (v - (before.get(k) ?? 0) > 0) d[k] = v - (before.get(k) ?? 0);
  return d;
}

describe('a list of name servers, one of them dead', () => {
  it('the cluster client writes, reads, deletes and asks for status through the live one', async () => {
    const client = new ClusterClient({ nameserver: [dead, c.nameserver.url], secret: c.secret, timeoutMs: 3000 });
    const data = randomBytes(3000);
    const { fid } = await client.write(data, { mime: 'image/jpeg' });
    expect(client.nameserver).toBe(c.nameserver.url);
    const fresh = new ClusterClient({ nameserver: `${dead},${c.nameserver.url}`, secret: c.secret, timeoutMs: 3000 });
    expect((await fresh.read(fid)).data.equals(data)).toBe(true);
    expect((await fresh.status()).dataservers.length).toBe(2);
    await fresh.delete(fid);
    await expect(client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    const list = await fresh.nameserverStatus();
    expect(list.map((n) => [n.url, n.alive])).toEqual([[dead, false], [c.nameserver.url, true]]);
  });

  it('ugcfs put and ugcfs status --json take the list', async () => {
    const env = { UGCFS_NAMESERVER: `${dead},${c.nameserver.url}` };
    const file = join(c.dir, 'list-put.bin');
    writeFileSync(file, randomBytes(2000));
    const put = await c.cli(['put', file, '--json'], { env });
    expect(put.code, put.stderr).toBe(0);
    const st = await c.cli(['status', '--json'], { env });
    expect(st.code, st.stderr).toBe(0);
    const nameservers = (JSON.parse(st.stdout) as { nameservers: NameserverStatus[] }).nameservers;
    expect(nameservers[0]).toEqual({ url: dead, role: null, epoch: 0, alive: false });
    expect(nameservers[1]).toMatchObject({ url: c.nameserver.url, alive: true });
    // A name server of a build without GET /leader shows role null; one with it, its role.
    expect([null, 'leader']).toContain(nameservers[1]!.role);
    const text = await c.cli(['status'], { env });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/name servers: 1 up of 2/);
    expect(text.stdout).toContain(`${dead}`);
    expect(text.stdout.split('\n').find((l) => l.includes(dead))).toMatch(/DOWN/);
    expect(text.stdout.split('\n').find((l) => l.includes(c.nameserver.url) && !l.includes(dead))).toMatch(/\bup\b/);
  });
});

describe('one name server listed', () => {
  it('makes no request beyond the assigns and one lookup', async () => {
    const writer = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret, assignBatch: 1, writeBatch: 1 });
    const reader = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
    const before = await nsRequests();
    const fids: string[] = [];
    for (let i = 0; i < 3; i++) fids.push((await writer.write(randomBytes(1000))).fid);
    // One lookup per block serves every read of it (assignment may spread them over blocks).
    const blocks = new Set(fids.map((f) => decodeFid(f).block)).size;
    for (const fid of fids) await reader.read(fid);
    for (const fid of fids) await reader.read(fid);
    const d = delta(before, await nsRequests());
    expect(d).toEqual({ 'POST /assign': 3, 'GET /blocks/:id': blocks });
  });
});

describe('no name server answers', () => {
  const ttl = 300;
  let client: ClusterClient;
  let sealedFid = '';
  let sealedData = Buffer.alloc(0);
  let writableFid = '';

  it('fills a block until the name server seals it', async () => {
    client = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret, timeoutMs: 1500, locationTtlMs: ttl });
    sealedData = randomBytes(20_000);
    sealedFid = (await client.write(sealedData)).fid;
    const block = decodeFid(sealedFid).block;
    // 256 KiB blocks: a dozen 20 KB files fill one, and the write it refuses seals it.
    await waitFor('the first block sealed', async () => {
      const w = await client.write(randomBytes(20_000));
      if (decodeFid(w.fid).block !== block) writableFid = w.fid;
      const loc = await client.locate(block, true);
      return loc.state === 'sealed' && writableFid !== '' ? loc : undefined;
    }, 30_000, 0);
    await client.read(sealedFid);
    await client.read(writableFid);
  });

  it('a stopped name server: sealed blocks are read from cached locations past their TTL; others fail typed', async () => {
    const other = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret, timeoutMs: 1500 });
    process.kill(c.nameserver.child.pid!, 'SIGSTOP');
    try {
      await sleep(ttl * 2);
      expect((await client.read(sealedFid)).data.equals(sealedData)).toBe(true);
      expect((await client.read(sealedFid)).data.equals(sealedData)).toBe(true);
      const err = await other.read(sealedFid).catch((e: unknown) => e);
      expect(isUgcfsError(err, 'UGCFS_ERR_TIMEOUT')).toBe(true);
      // A writable block's cached location is not served stale.
      await expect(client.read(writableFid)).rejects.toMatchObject({ code: 'UGCFS_ERR_TIMEOUT' });
    } finally {
      process.kill(c.nameserver.child.pid!, 'SIGCONT');
    }
  });

  it('a killed name server: the same, and the error says no name server answered', async () => {
    await client.read(sealedFid);
    await c.killNameserver();
    await sleep(ttl * 2);
    expect((await client.read(sealedFid)).data.equals(sealedData)).toBe(true);
    const listed = new ClusterClient({ nameserver: [dead, c.nameserver.url], secret: c.secret, timeoutMs: 1500 });
    const err = await listed.read(sealedFid).catch((e: unknown) => e);
    expect(isUgcfsError(err, 'UGCFS_ERR_UPSTREAM')).toBe(true);
    expect((err as Error).message).toMatch(/no name server answered/);
    await expect(client.read(writableFid)).rejects.toMatchObject({ code: 'UGCFS_ERR_UPSTREAM' });
    await c.restartNameserver();
  });
});
