// The fast read route (dataserver/needle-read-route.ts) against a real `ugcfs dataserver`:
// the per-connection memo of a proven secret never lets a wrong or missing secret through on
// the same keep-alive connection, the response carries every header, an error is answered as
// fastify answers one (src/http/ahead-route.ts), a query string changes nothing, and the request
// and read counters move once per read whether the index entry came from the cache or LevelDB.
import { closeSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { crc32c } from '@node-rs/crc32';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import { HEADERS } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { TEST_SECRET, type Proc } from '../helpers/proc.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-dsread-', { secret: SECRET });
/** always the same data dir: a restart reopens it */
const startDs = () => bed.start('ds');

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** the client port: equal ports mean the same connection */
  port: number;
}

/** One request through `agent`, so tests control which connection carries it. */
function send(agent: Agent, url: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), port: req.socket!.localPort! }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}


describe('data server fast read route', () => {
  let ds: Proc;
  const fid = encodeFid({ block: 3, key: 77n, cookie: 0x0badcafe });
  const data = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7) & 0xff));
  beforeAll(async () => {
    ds = await startDs();
    const auth = { 'x-ugcfs-secret': SECRET };
    expect((await fetch(`${ds.url}/blocks/3`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    const put = await fetch(`${ds.url}/needles/${fid}`, { method: 'PUT', headers: { ...auth, 'x-ugcfs-mime': 'image/webp', 'x-ugcfs-owner': 'shop-4' }, body: data });
    expect(put.status).toBe(201);
  });

  it('checks the secret on every request of a keep-alive connection that already proved it', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const url = `${ds.url}/needles/${fid}`;
      const first = await send(agent, url, 'GET', { 'x-ugcfs-secret': SECRET });
      expect(first.status).toBe(200);
      const tries: Array<[Record<string, string>, number]> = [
        [{ 'x-ugcfs-secret': 'wrong' }, 401],
        [{}, 401],
        [{ 'x-ugcfs-secret': SECRET.slice(0, -1) }, 401],
        [{ 'x-ugcfs-secret': SECRET }, 200],
        [{ authorization: 'Bearer nope' }, 401],
        [{ authorization: `Bearer ${SECRET}` }, 200],
        [{ 'x-ugcfs-secret': `${SECRET}x` }, 401],
      ];
      for (const [headers, status] of tries) {
        const r = await send(agent, url, 'GET', headers);
        expect(r.port, 'same connection').toBe(first.port);
        expect(r.status, JSON.stringify(headers)).toBe(status);
        if (status === 401) {
          expect(JSON.parse(r.body.toString()).error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
          expect(r.body.includes(data.subarray(0, 64))).toBe(false);
        } else {
          expect(Buffer.compare(r.body, data)).toBe(0);
        }
      }
    } finally {
      agent.destroy();
    }
  });

  it('answers with every header; HEAD has them and no body', async () => {
    const agent = new Agent({ keepAlive: false });
    const url = `${ds.url}/needles/${fid}`;
    const get = await send(agent, url, 'GET', { 'x-ugcfs-secret': SECRET, 'x-request-id': 'req-42.a' });
    expect(get.status).toBe(200);
    expect(get.headers['content-type']).toBe('image/webp');
    expect(get.headers['content-length']).toBe('5000');
    expect(get.headers['x-ugcfs-owner']).toBe('shop-4');
    expect(get.headers['cache-control']).toBe('no-store');
    expect(get.headers['x-request-id']).toBe('req-42.a');
    expect(Number(get.headers['x-ugcfs-crc'])).toBeGreaterThanOrEqual(0);
    expect(Math.abs(Number(get.headers['x-ugcfs-upload-time']) - Date.now())).toBeLessThan(3_600_000);
    const head = await send(agent, url, 'HEAD', { 'x-ugcfs-secret': SECRET, 'x-request-id': 'bad id with spaces' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    expect(head.headers['content-length']).toBe('5000');
    expect(head.headers['x-ugcfs-crc']).toBe(get.headers['x-ugcfs-crc']);
    expect(head.headers['x-ugcfs-upload-time']).toBe(get.headers['x-ugcfs-upload-time']);
    expect(head.headers['x-request-id']).toBeUndefined();
  });

  it('answers an error as fastify does: the same envelope and headers, and a request id', async () => {
    const agent = new Agent({ keepAlive: false });
    // the same refusal, rendered ahead of fastify and by fastify's error handler
    const fast = await send(agent, `${ds.url}/needles/${fid}`, 'GET', {});
    const slow = await send(agent, `${ds.url}/blocks`, 'GET', {});
    expect([fast.status, slow.status]).toEqual([401, 401]);
    const body = JSON.parse(fast.body.toString());
    expect(body).toEqual({ error: { code: 'UGCFS_ERR_UNAUTHORIZED', message: expect.any(String) } });
    expect(fast.body.toString()).toBe(slow.body.toString());
    const envelope = (h: Answer['headers']) => {
      const { date: _d, connection: _c, 'keep-alive': _k, 'x-request-id': _r, ...rest } = h;
      return rest;
    };
    expect(envelope(fast.headers)).toEqual(envelope(slow.headers));
    expect(envelope(fast.headers)).toMatchObject({ 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
    for (const r of [fast, slow]) expect(r.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(fast.headers['x-request-id']).not.toBe(slow.headers['x-request-id']);
    // a given id is echoed on an error, a HEAD's included, whoever answers
    for (const [url, method] of [[`${ds.url}/needles/${fid}`, 'GET'], [`${ds.url}/needles/${fid}`, 'HEAD'], [`${ds.url}/blocks`, 'GET']] as const) {
      const r = await send(agent, url, method, { 'x-request-id': 'err-7' });
      expect(r.status, `${method} ${url}`).toBe(401);
      expect(r.headers['x-request-id'], `${method} ${url}`).toBe('err-7');
    }
    // an error from the store: the block is not held here
    const missing = await send(agent, `${ds.url}/needles/${encodeFid({ block: 999, key: 1n, cookie: 1 })}`, 'GET', { 'x-ugcfs-secret': SECRET });
    expect(missing.status).toBe(404);
    expect(JSON.parse(missing.body.toString()).error.code).toBe('UGCFS_ERR_BLOCK_NOT_FOUND');
    expect(missing.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(missing.headers['x-ugcfs-error-code']).toBe('UGCFS_ERR_BLOCK_NOT_FOUND');
  });

  it('answers /needles/<fid>?x=1 as /needles/<fid>, x-ugcfs-verify: client included', async () => {
    const auth = { 'x-ugcfs-secret': SECRET };
    expect((await fetch(`${ds.url}/blocks/5`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    const damaged = encodeFid({ block: 5, key: 1n, cookie: 0x5eed });
    expect((await fetch(`${ds.url}/needles/${damaged}`, { method: 'PUT', headers: auth, body: data })).status).toBe(201);
    const agent = new Agent({ keepAlive: false });
    const read = async (query: string, verify: boolean, method = 'GET') => {
      const r = await send(agent, `${ds.url}/needles/${damaged}${query}`, method, verify ? { ...auth, [HEADERS.verify]: 'client' } : auth);
      const { date: _d, 'x-request-id': _r, ...headers } = r.headers;
      return { status: r.status, headers, body: r.status === 200 ? r.body : JSON.parse(r.body.toString()).error.code };
    };
    for (const verify of [false, true]) {
      const plain = await read('', verify);
      expect(plain.status).toBe(200);
      expect(plain.body).toEqual(data);
      expect(await read('?x=1', verify)).toEqual(plain);
      const head = await read('?x=1', verify, 'HEAD');
      expect(head).toEqual(await read('', verify, 'HEAD'));
      expect(head.headers).toEqual(plain.headers);
    }
    // One byte of the record's data damaged (it is the block's first record: its data is near offset 0).
    const blocks = join(bed.dir, 'ds', 'blocks');
    const fd = openSync(join(blocks, readdirSync(blocks).find((n) => n.startsWith('5.') && n.endsWith('.blk'))!), 'r+');
    const at = 2500;
    const was = Buffer.alloc(1);
    readSync(fd, was, 0, 1, at);
    writeSync(fd, Buffer.from([was[0]! ^ 0xa5]), 0, 1, at);
    try {
      // checked by the server: refused; checked by the client: the bytes, which fail the CRC sent
      const server = await read('', false);
      expect([server.status, server.body]).toEqual([500, 'UGCFS_ERR_CHECKSUM']);
      expect(await read('?x=1', false)).toEqual(server);
      const client = await read('', true);
      expect(client.status).toBe(200);
      expect(crc32c(client.body as Buffer)).not.toBe(Number(client.headers[HEADERS.crc]));
      expect(await read('?x=1', true)).toEqual(client);
    } finally {
      writeSync(fd, was, 0, 1, at);
      closeSync(fd);
    }
  });

  it('counts one request, one lookup and one pread per read, from the cache and after a restart from LevelDB', async () => {
    const url = `${ds.url}/needles/${fid}`;
    const auth = { 'x-ugcfs-secret': SECRET };
    const counts = async (u: string) => {
      const m = await scrapeMetrics(u);
      const reads = (status: string) => m.value('ugcfs_http_requests_total', { route: '/needles/:fid', method: 'GET', status });
      return {
        ok: reads('200'),
        missing: reads('404'),
        cache: m.value('ugcfs_index_lookups_total', { source: 'cache' }),
        db: m.value('ugcfs_index_lookups_total', { source: 'db' }),
        preads: m.value('ugcfs_block_preads_total'),
      };
    };
    const before = await counts(ds.url);
    for (let i = 0; i < 5; i++) expect((await fetch(url, { headers: auth })).status).toBe(200);
    const wrongCookie = encodeFid({ block: 3, key: 77n, cookie: 0x0badcaff });
    expect((await fetch(`${ds.url}/needles/${wrongCookie}`, { headers: auth })).status).toBe(404);
    const after = await counts(ds.url);
    expect(after).toEqual({ ...before, ok: before.ok + 5, missing: before.missing + 1, cache: before.cache + 6, preads: before.preads + 5 });

    // A restarted server starts with an empty cache: the first read goes to LevelDB.
    await ds.kill('SIGTERM');
    ds = await startDs();
    const cold = await counts(ds.url);
    const r = await fetch(`${ds.url}/needles/${fid}`, { headers: auth });
    expect(r.status).toBe(200);
    expect(Buffer.compare(Buffer.from(await r.arrayBuffer()), data)).toBe(0);
    expect((await fetch(`${ds.url}/needles/${fid}`, { headers: auth })).status).toBe(200);
    const warm = await counts(ds.url);
    expect(warm).toEqual({ ...cold, ok: cold.ok + 2, db: cold.db + 1, cache: cold.cache + 1, preads: cold.preads + 2 });
  });
});
