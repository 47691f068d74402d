// The fast read route (dataserver/needle-read-route.ts) against a real `ugcfs dataserver`:
// the per-connection memo of a proven secret never lets a wrong or missing secret through on
// the same keep-alive connection, the response carries every header, and the request and
// read counters move once per read whether the index entry came from the cache or LevelDB.
import { Agent, request } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/file-id.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import type { Proc } from '../helpers/proc.ts';

const SECRET = 'read-route-secret';
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
