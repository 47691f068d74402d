// The data server's HTTP API against real `ugcfs dataserver` processes: the happy paths,
// replication, pull, and bad input (each a clear 4xx with a stable code, nothing written).
import { mkdirSync, openSync, readSync, readdirSync, readlinkSync, writeSync, closeSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import type { BlockReport, Heartbeat, ScrubResult, WriteResult } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { TEST_SECRET, run, waitFor, type Proc } from '../helpers/proc.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-dsapi-', { secret: SECRET, args: ['--block-size', '64k'] });
const startDs = bed.start;

interface Res {
  status: number;
  headers: Headers;
  body: Buffer;
  json: () => { error?: { code: string; message: string } } & Record<string, unknown>;
}

async function call(url: string, init: RequestInit & { secret?: string | null } = {}): Promise<Res> {
  const headers = new Headers(init.headers);
  if (init.secret !== null) headers.set('x-ugcfs-secret', init.secret ?? SECRET);
  const r = await fetch(url, { ...init, headers });
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

const fidOf = (block: number, key: bigint, cookie = 0x1234abcd) => encodeFid({ block, key, cookie });
const bytes = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff));

async function blocks(ds: Proc): Promise<BlockReport[]> {
  return (await call(`${ds.url}/blocks`)).json() as unknown as BlockReport[];
}

describe('data server HTTP API', () => {
  let a: Proc;
  let b: Proc;
  beforeAll(async () => {
    [a, b] = await Promise.all([startDs('a'), startDs('b')]);
    for (const ds of [a, b]) {
      const r = await call(`${ds.url}/blocks/2`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      expect(r.status).toBe(201);
    }
  });

  it('stores, serves and deletes a file, with metadata', async () => {
    const fid = fidOf(2, 10n);
    const data = bytes(20_000);
    const put = await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: data, headers: { 'x-ugcfs-mime': 'image/png', 'x-ugcfs-owner': 'seller-9' } });
    expect(put.status).toBe(201);
    expect(put.json()).toMatchObject({ fid, size: 20_000 } satisfies Partial<WriteResult>);
    const get = await call(`${a.url}/needles/${fid}`);
    expect(get.status).toBe(200);
    expect(Buffer.compare(get.body, data)).toBe(0);
    expect(get.headers.get('content-type')).toBe('image/png');
    expect(get.headers.get('x-ugcfs-owner')).toBe('seller-9');
    expect(get.headers.get('x-ugcfs-crc')).toBe(String(put.json().crc));
    const head = await call(`${a.url}/needles/${fid}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('20000');
    expect((await call(`${a.url}/needles/${fid}`, { method: 'DELETE' })).status).toBe(204);
    expect((await call(`${a.url}/needles/${fid}`)).json().error?.code).toBe('UGCFS_ERR_NOT_FOUND');
    expect((await call(`${a.url}/needles/${fid}`, { method: 'DELETE' })).status).toBe(404);
  });

  it('creating a block again is idempotent while it is empty, and 409 once it holds data', async () => {
    const create = (id: number) => call(`${a.url}/blocks/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect((await create(30)).status).toBe(201);
    expect((await create(30)).status).toBe(200);
    expect((await call(`${a.url}/needles/${fidOf(30, 1n)}`, { method: 'PUT', body: bytes(100) })).status).toBe(201);
    const again = await create(30);
    expect(again.status).toBe(409);
    expect(again.json().error?.code).toBe('UGCFS_ERR_CONFLICT');
    expect(Buffer.compare((await call(`${a.url}/needles/${fidOf(30, 1n)}`)).body, bytes(100))).toBe(0);
    expect((await call(`${a.url}/blocks/30`, { method: 'DELETE' })).status).toBe(204);
  });

  it('stores bytes raw whatever the content type says', async () => {
    const fid = fidOf(2, 11n);
    const put = await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: '{"not":"parsed"}', headers: { 'content-type': 'application/json' } });
    expect(put.status).toBe(201);
    const get = await call(`${a.url}/needles/${fid}`);
    expect(get.body.toString()).toBe('{"not":"parsed"}');
    expect(get.headers.get('content-type')).toBe('application/json');
  });

  it('a read is one index lookup and one pread (metrics)', async () => {
    const fid = fidOf(2, 12n);
    await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: bytes(1000) });
    // lookups are labelled by where the entry was found (cache or db); a read is one of either
    const counts = async () => {
      const m = await scrapeMetrics(a.url);
      return { reads: m.value('ugcfs_needle_reads_total'), preads: m.value('ugcfs_block_preads_total'), lookups: m.value('ugcfs_index_lookups_total', {}, { sum: true }) };
    };
    const before = await counts();
    for (let i = 0; i < 10; i++) expect((await call(`${a.url}/needles/${fid}`)).status).toBe(200);
    expect(await counts()).toEqual({ reads: before.reads + 10, preads: before.preads + 10, lookups: before.lookups + 10 });
  });

  describe('bad input changes nothing', () => {
    let sizeBefore: number;
    beforeAll(async () => {
      sizeBefore = (await blocks(a)).find((r) => r.id === 2)!.size;
    });
    afterAll(async () => {
      expect((await blocks(a)).find((r) => r.id === 2)!.size).toBe(sizeBefore);
    });

    it.each([
      ['/needles/not-a-fid', 'UGCFS_ERR_BAD_FID'],
      ['/needles/1AAAABQAAAAAAMDnerb7', 'UGCFS_ERR_BAD_FID'],
      ['/needles/2AAAABQAAAAAAMDnerb7v', 'UGCFS_ERR_BAD_FID'],
      ['/needles/1AAAABQAAAAAAMDnerb7v.jpg', 'UGCFS_ERR_BAD_FID'],
      ['/needles/..%2F..%2Fetc%2Fpasswd', 'UGCFS_ERR_BAD_FID'],
    ])('malformed fid %s -> 400 %s on GET, PUT and DELETE', async (path, code) => {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await call(a.url + path, { method, body: method === 'PUT' ? 'x' : undefined });
        expect(r.status, method).toBe(400);
        expect(r.json().error?.code).toBe(code);
      }
    });

    it.each(['abc', '-1', '4294967296', '1.5', '99999999999'])('malformed block id %s -> 400', async (id) => {
      for (const [method, path] of [['POST', `/blocks/${id}`], ['GET', `/blocks/${id}/data`], ['POST', `/blocks/${id}/scrub`], ['DELETE', `/blocks/${id}`]] as const) {
        const r = await call(a.url + path, { method, headers: { 'content-type': 'application/json' }, body: method === 'POST' ? '{}' : undefined });
        expect(r.status, `${method} ${path}`).toBe(400);
        expect(r.json().error?.code).toBe('UGCFS_ERR_BAD_REQUEST');
      }
    });

    it('wrong cookie answers exactly like a missing file, and deletes nothing', async () => {
      const fid = fidOf(2, 20n, 111);
      await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: bytes(500) });
      sizeBefore = (await blocks(a)).find((r) => r.id === 2)!.size;
      const wrong = await call(`${a.url}/needles/${fidOf(2, 20n, 112)}`);
      const missing = await call(`${a.url}/needles/${fidOf(2, 21n, 112)}`);
      expect(wrong.status).toBe(404);
      expect(wrong.json()).toEqual(missing.json());
      expect((await call(`${a.url}/needles/${fidOf(2, 20n, 112)}`, { method: 'DELETE' })).status).toBe(404);
      expect((await call(`${a.url}/needles/${fid}`)).status).toBe(200);
    });

    it('a body larger than the block size -> 413 UGCFS_ERR_TOO_LARGE', async () => {
      const r = await call(`${a.url}/needles/${fidOf(2, 30n)}`, { method: 'PUT', body: bytes(70 * 1024) });
      expect(r.status).toBe(413);
      expect(r.json().error?.code).toBe('UGCFS_ERR_TOO_LARGE');
      // Just under the limit but with headers it cannot fit either.
      const r2 = await call(`${a.url}/needles/${fidOf(2, 31n)}`, { method: 'PUT', body: bytes(64 * 1024 - 8) });
      expect(r2.status).toBe(413);
      expect((await call(`${a.url}/needles/${fidOf(2, 30n)}`)).status).toBe(404);
    });

    it('missing or wrong secret -> 401 on every route', async () => {
      const fid = fidOf(2, 40n);
      const routes: Array<[string, string]> = [
        ['PUT', `/needles/${fid}`], ['GET', `/needles/${fid}`], ['DELETE', `/needles/${fid}`], ['GET', '/blocks'], ['POST', '/blocks/9'],
        ['DELETE', '/blocks/2'], ['GET', '/blocks/2/data'], ['POST', '/blocks/2/pull'], ['POST', '/blocks/2/readonly'], ['POST', '/blocks/2/compact'], ['POST', '/blocks/2/scrub'],
      ];
      for (const secret of [null, 'wrong']) {
        for (const [method, path] of routes) {
          const r = await call(a.url + path, { method, secret, headers: method === 'PUT' ? {} : { 'content-type': 'application/json' }, body: method === 'PUT' ? 'x' : method === 'POST' ? '{}' : undefined });
          expect(r.status, `${method} ${path}`).toBe(401);
          expect(r.json().error?.code).toBe('UGCFS_ERR_UNAUTHORIZED');
        }
      }
      expect((await blocks(a)).map((r) => r.id)).toEqual([2]);
      expect((await call(`${a.url}/blocks/2/data`, { secret: `Bearer ${SECRET}` })).status).toBe(401);
      const bearer = await fetch(`${a.url}/blocks`, { headers: { authorization: `Bearer ${SECRET}` } });
      expect(bearer.status).toBe(200);
    });

    it.each([
      [{ 'x-ugcfs-mime': 'not a mime' }, 'UGCFS_ERR_BAD_REQUEST'],
      [{ 'x-ugcfs-owner': 'x'.repeat(300) }, 'UGCFS_ERR_BAD_REQUEST'],
      [{ 'x-ugcfs-upload-time': 'yesterday' }, 'UGCFS_ERR_BAD_REQUEST'],
      [{ 'x-ugcfs-crc': '12345' }, 'UGCFS_ERR_BAD_REQUEST'],
      [{ 'x-ugcfs-replicas': 'ftp://example.com' }, 'UGCFS_ERR_BAD_REQUEST'],
    ])('bad header %j -> 400', async (headers, code) => {
      const r = await call(`${a.url}/needles/${fidOf(2, 50n)}`, { method: 'PUT', body: bytes(100), headers });
      expect(r.status).toBe(400);
      expect(r.json().error?.code).toBe(code);
      expect((await call(`${a.url}/needles/${fidOf(2, 50n)}`)).status).toBe(404);
    });

    it('empty body -> 400 UGCFS_ERR_EMPTY_BODY', async () => {
      const r = await call(`${a.url}/needles/${fidOf(2, 51n)}`, { method: 'PUT' });
      expect(r.status).toBe(400);
      expect(r.json().error?.code).toBe('UGCFS_ERR_EMPTY_BODY');
    });

    it('unknown block -> 404 UGCFS_ERR_BLOCK_NOT_FOUND', async () => {
      const r = await call(`${a.url}/needles/${fidOf(77, 1n)}`, { method: 'PUT', body: bytes(10) });
      expect(r.status).toBe(404);
      expect(r.json().error?.code).toBe('UGCFS_ERR_BLOCK_NOT_FOUND');
    });

    it('bad JSON bodies -> 400', async () => {
      const r1 = await call(`${a.url}/blocks/2/readonly`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"readonly":"yes"}' });
      expect(r1.json().error?.code).toBe('UGCFS_ERR_BAD_REQUEST');
      const r2 = await call(`${a.url}/blocks/2/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"from":"file:///etc"}' });
      expect(r2.json().error?.code).toBe('UGCFS_ERR_BAD_REQUEST');
      const r3 = await call(`${a.url}/blocks/2/readonly`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
      expect(r3.json().error?.code).toBe('UGCFS_ERR_BAD_REQUEST');
    });
  });

  it('replicates writes and deletes to the peers in x-ugcfs-replicas', async () => {
    const fid = fidOf(2, 100n);
    const data = bytes(5000, 7);
    const put = await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: data, headers: { 'x-ugcfs-replicas': b.url, 'x-ugcfs-mime': 'image/webp', 'x-ugcfs-owner': 'o1' } });
    expect(put.status).toBe(201);
    const [ga, gb] = await Promise.all([call(`${a.url}/needles/${fid}`), call(`${b.url}/needles/${fid}`)]);
    expect(Buffer.compare(gb.body, data)).toBe(0);
    for (const h of ['content-type', 'x-ugcfs-owner', 'x-ugcfs-upload-time', 'x-ugcfs-crc']) expect(gb.headers.get(h), h).toBe(ga.headers.get(h));
    expect((await call(`${a.url}/needles/${fid}`, { method: 'DELETE', headers: { 'x-ugcfs-replicas': b.url } })).status).toBe(204);
    expect((await call(`${b.url}/needles/${fid}`)).status).toBe(404);
    expect((await call(`${a.url}/needles/${fid}`)).status).toBe(404);
  });

  it('a write one replica cannot take is refused and leaves no visible copy', async () => {
    const fid = fidOf(2, 101n);
    const r = await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: bytes(300), headers: { 'x-ugcfs-replicas': `${b.url},http://127.0.0.1:9` } });
    expect(r.status).toBe(502);
    expect(r.json().error?.code).toBe('UGCFS_ERR_REPLICATION');
    expect((await call(`${a.url}/needles/${fid}`)).status).toBe(404);
    expect((await call(`${b.url}/needles/${fid}`)).status).toBe(404);
  });

  it('a failed write never undoes a copy that an earlier write already stored', async () => {
    const fid = fidOf(2, 102n);
    const data = bytes(700, 3);
    expect((await call(`${b.url}/needles/${fid}`, { method: 'PUT', body: data })).status).toBe(201);
    const again = await call(`${b.url}/needles/${fid}`, { method: 'PUT', body: data });
    expect(again.json()).toMatchObject({ fid, existed: true });
    const r = await call(`${a.url}/needles/${fid}`, { method: 'PUT', body: data, headers: { 'x-ugcfs-replicas': `${b.url},http://127.0.0.1:9` } });
    expect(r.json().error?.code).toBe('UGCFS_ERR_REPLICATION');
    expect((await call(`${a.url}/needles/${fid}`)).status).toBe(404);
    expect(Buffer.compare((await call(`${b.url}/needles/${fid}`)).body, data)).toBe(0);
  });

  it('pulls a whole block from a peer; replicas scrub to the same digest', async () => {
    for (let k = 200n; k < 230n; k++) {
      const r = await call(`${a.url}/needles/${fidOf(2, k)}`, { method: 'PUT', body: bytes(Number(k) * 3, Number(k)), headers: { 'x-ugcfs-replicas': b.url } });
      expect(r.status).toBe(201);
    }
    await call(`${a.url}/needles/${fidOf(2, 205n)}`, { method: 'DELETE', headers: { 'x-ugcfs-replicas': b.url } });
    const c = await startDs('c');
    const pull = await call(`${c.url}/blocks/2/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: a.url }) });
    expect(pull.status).toBe(200);
    expect(pull.json().bytes).toBe((await blocks(a)).find((r) => r.id === 2)!.size);
    for (let k = 200n; k < 230n; k++) {
      const g = await call(`${c.url}/needles/${fidOf(2, k)}`);
      if (k === 205n) expect(g.status).toBe(404);
      else expect(Buffer.compare(g.body, bytes(Number(k) * 3, Number(k)))).toBe(0);
    }
    const digests = await Promise.all([a, b, c].map(async (ds) => (await call(`${ds.url}/blocks/2/scrub`, { method: 'POST' })).json() as unknown as ScrubResult));
    // c is a byte copy of a; b holds only the replicated subset, so it is checked for damage only.
    expect(digests[2]!.digest).toBe(digests[0]!.digest);
    for (const d of digests) expect(d.bad).toEqual([]);
    // A second pull of a block already held is refused.
    const again = await call(`${c.url}/blocks/2/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: a.url }) });
    expect(again.json().error?.code).toBe('UGCFS_ERR_CONFLICT');
    await c.kill('SIGKILL');
  });

  it('a block held not at all or only partly (pull in progress) is BLOCK_NOT_FOUND, never NOT_FOUND', async () => {
    const fid = fidOf(2, 200n);
    expect((await call(`${a.url}/needles/${fid}`)).status).toBe(200);
    const c = await startDs('c-partial');
    // The pull's source answers nothing, so the copy stays half-made until the proxy cuts it.
    const proxy = await startTcpProxy(Number(new URL(a.url).port));
    proxy.set({ mode: 'blackhole' });
    try {
      const expectBlockNotFound = async (when: string) => {
        const get = await call(`${c.url}/needles/${fid}`);
        expect([when, get.status, get.json().error?.code]).toEqual([when, 404, 'UGCFS_ERR_BLOCK_NOT_FOUND']);
        // HEAD has no body: the code travels in a header, or a reader could not tell the two apart.
        const head = await call(`${c.url}/needles/${fid}`, { method: 'HEAD' });
        expect([when, head.status, head.headers.get('x-ugcfs-error-code')]).toEqual([when, 404, 'UGCFS_ERR_BLOCK_NOT_FOUND']);
      };
      await expectBlockNotFound('block absent');
      const pull = call(`${c.url}/blocks/2/pull`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ from: proxy.url }) });
      // The pull connects only after creating the (incomplete) block.
      while (proxy.stats.connections === 0) await new Promise((r) => setTimeout(r, 20));
      expect((await blocks(c)).map((r) => r.id)).toContain(2);
      await expectBlockNotFound('pull in progress');
      proxy.cut();
      expect((await pull).status).toBeGreaterThanOrEqual(400);
      await expectBlockNotFound('pull failed');
      // A missing key in a whole block stays a final NOT_FOUND, headers included.
      const missing = await call(`${a.url}/needles/${fidOf(2, 999n)}`, { method: 'HEAD' });
      expect([missing.status, missing.headers.get('x-ugcfs-error-code')]).toEqual([404, null]);
    } finally {
      await proxy.close();
      await c.kill('SIGKILL');
    }
  });

  it('streams block bytes with generation and size headers', async () => {
    const r = await call(`${a.url}/blocks/2/data?from=0`);
    const report = (await blocks(a)).find((x) => x.id === 2)!;
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(report.size);
    expect(r.headers.get('x-ugcfs-block-size')).toBe(String(report.size));
    expect(r.headers.get('x-ugcfs-block-gen')).toBe(String(report.gen));
    const tail = await call(`${a.url}/blocks/2/data?from=${report.size - 8}`);
    expect(Buffer.compare(tail.body, r.body.subarray(report.size - 8))).toBe(0);
    expect((await call(`${a.url}/blocks/2/data?from=x`)).status).toBe(400);
  });

  it('block copies never leak or close the shared descriptor: closed once compacted or deleted, readable after a reader hangs up', async () => {
    const d = await startDs('streamed', ['--block-size', '8m']);
    const heldDeleted = () => {
      // Every descriptor of any process that still points at an unlinked file of this server.
      const out: string[] = [];
      for (const pid of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
        let fds: string[] = [];
        try {
          fds = readdirSync(`/proc/${pid}/fd`);
        } catch {
          continue;
        }
        for (const fd of fds) {
          const target = (() => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ''; } })();
          if (target.startsWith(join(bed.dir, 'streamed')) && target.endsWith('(deleted)')) out.push(target);
        }
      }
      return out;
    };
    for (const id of [5, 6]) {
      await call(`${d.url}/blocks/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      for (let k = 1n; k <= 3n; k++) expect((await call(`${d.url}/needles/${fidOf(id, k)}`, { method: 'PUT', body: bytes(5000) })).status).toBe(201);
      await call(`${d.url}/needles/${fidOf(id, 2n)}`, { method: 'DELETE' });
      const r = await call(`${d.url}/blocks/${id}/data?from=0`);
      expect(r.status).toBe(200);
    }
    expect((await call(`${d.url}/blocks/5/compact`, { method: 'POST' })).status).toBe(200);
    expect((await call(`${d.url}/blocks/6`, { method: 'DELETE' })).status).toBeLessThan(300);
    await waitFor('old block files closed', () => heldDeleted().length === 0, 5000, 50).catch(() => undefined);
    expect(heldDeleted()).toEqual([]);

    // A copy whose reader hangs up mid-stream (a pulling peer killed) leaves the block readable.
    await call(`${d.url}/blocks/8`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const big = bytes(60_000, 8);
    for (let k = 1n; k <= 60n; k++) expect((await call(`${d.url}/needles/${fidOf(8, k)}`, { method: 'PUT', body: big })).status).toBe(201);
    for (let round = 0; round < 3; round++) {
      const ac = new AbortController();
      const res = await fetch(`${d.url}/blocks/8/data?from=0`, { headers: { 'x-ugcfs-secret': SECRET }, signal: ac.signal });
      const reader = res.body!.getReader();
      await reader.read();
      ac.abort();
      await reader.cancel().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
      const got = await call(`${d.url}/needles/${fidOf(8, 60n)}`);
      expect(got.status).toBe(200);
      expect(got.body.equals(big)).toBe(true);
    }
  });

  it('readonly blocks refuse writes with UGCFS_ERR_BLOCK_READONLY; compaction keeps files', async () => {
    const ro = await call(`${b.url}/blocks/2/readonly`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"readonly":true}' });
    expect(ro.json()).toMatchObject({ readonly: true });
    const r = await call(`${b.url}/needles/${fidOf(2, 300n)}`, { method: 'PUT', body: bytes(10) });
    expect(r.status).toBe(409);
    expect(r.json().error?.code).toBe('UGCFS_ERR_BLOCK_READONLY');
    await call(`${b.url}/blocks/2/readonly`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"readonly":false}' });
    const c = await call(`${b.url}/blocks/2/compact`, { method: 'POST' });
    expect(c.status).toBe(200);
    expect(c.json().afterBytes as number).toBeLessThan(c.json().beforeBytes as number);
    expect(Buffer.compare((await call(`${b.url}/needles/${fidOf(2, 210n)}`)).body, bytes(630, 210))).toBe(0);
  });

  it('a flipped byte on disk is answered 500 UGCFS_ERR_CHECKSUM, never served', async () => {
    const d = await startDs('d');
    await call(`${d.url}/blocks/1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    const fid = fidOf(1, 1n);
    await call(`${d.url}/needles/${fid}`, { method: 'PUT', body: bytes(4000), headers: { 'x-ugcfs-mime': 'image/jpeg' } });
    expect(await d.kill('SIGTERM')).toBe(0);
    const path = join(bed.dir, 'd', 'blocks', '1.0.blk');
    const fd = openSync(path, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, 2000);
    one[0]! ^= 0xff;
    writeSync(fd, one, 0, 1, 2000);
    closeSync(fd);
    const d2 = await startDs('d');
    const r = await call(`${d2.url}/needles/${fid}`);
    expect(r.status).toBe(500);
    expect(r.json().error?.code).toBe('UGCFS_ERR_CHECKSUM');
    expect(r.body.includes(bytes(4000).subarray(0, 64))).toBe(false);
    const s = (await call(`${d2.url}/blocks/1/scrub`, { method: 'POST' })).json() as unknown as ScrubResult;
    expect(s.bad).toEqual([{ key: '1', offset: 0, reason: 'crc' }]);
    await d2.kill('SIGKILL');
  });
});

describe('ugcfs dataserver process', () => {
  it('keeps its id across restarts and exits 0 on SIGTERM', async () => {
    const p = await startDs('e', ['--id', 'ds-test-e']);
    expect(p.lines.join('\n')).toContain('"id":"ds-test-e"');
    expect(await p.kill('SIGTERM')).toBe(0);
    const again = await startDs('e');
    expect(again.lines.join('\n')).toContain('"id":"ds-test-e"');
    const code = await again.kill('SIGTERM');
    expect(code, again.lines.slice(-8).join('\n')).toBe(0);
  });

  it('an unusable data directory is a one-line error and exit 2', async () => {
    const file = join(bed.dir, 'plain-file');
    writeFileSync(file, 'x');
    const r = await run(['dataserver', '--data', join(file, 'sub'), '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('ugcfs'))).toHaveLength(1);
    expect(r.stderr).toContain('not a writable directory');
  });

  it('will not start, loopback included, without a cluster secret or with a guessable one', async () => {
    const cases: Array<[string, string]> = [
      ['', 'is required'],
      ['s'.repeat(31), 'shorter than 32 characters'],
      [`change-me-${'x'.repeat(30)}`, 'is an example value'],
    ];
    for (const [secret, why] of cases) {
      const r = await run(['dataserver', '--data', join(bed.dir, 'f'), '--host', '127.0.0.1', '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: secret } });
      expect(r.code, secret).toBe(2);
      const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('ugcfs'));
      expect(lines, secret).toHaveLength(1);
      expect(lines[0], secret).toContain('--cluster-secret');
      expect(lines[0], secret).toContain(why);
      if (secret !== '') expect(r.stdout + r.stderr, 'the value is never shown').not.toContain(secret);
      expect(r.stdout, 'never listened').not.toContain('"msg":"listening"');
    }
  });

  it('heartbeats to the name server and executes the commands in the reply', async () => {
    const beats: Heartbeat[] = [];
    let reply = { ok: true, commands: [] as unknown[] };
    const ns: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        if (req.url === '/ds/heartbeat' && req.headers['x-ugcfs-secret'] === SECRET) {
          beats.push(JSON.parse(body) as Heartbeat);
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify(reply));
          reply = { ok: true, commands: [] };
        } else {
          res.statusCode = 401;
          res.end('{}');
        }
      });
    });
    await new Promise<void>((r) => ns.listen(0, '127.0.0.1', r));
    const nsUrl = `http://127.0.0.1:${(ns.address() as { port: number }).port}`;
    mkdirSync(join(bed.dir, 'g'), { recursive: true });
    try {
      const p = await startDs('g', ['--nameserver', nsUrl, '--heartbeat-ms', '100', '--rack', 'r2', '--id', 'ds-g']);
      await call(`${p.url}/blocks/5`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await waitUntil(() => beats.some((h) => (h.report?.blocks ?? h.blocks ?? []).some((bl) => bl.id === 5)));
      const last = beats.at(-1)!;
      expect(last).toMatchObject({ id: 'ds-g', url: p.url, rack: 'r2', blockSize: 65536 });
      expect(last.freeBytes).toBeGreaterThan(0);
      await call(`${p.url}/blocks/6`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      reply = { ok: true, commands: [{ kind: 'delete-block', block: 5, reason: 'test' }, { kind: 'readonly', block: 6, readonly: true }] };
      await waitUntil(async () => (await blocks(p)).map((r) => `${r.id}:${r.readonly}`).join() === '6:true');
      const refused = await call(`${p.url}/needles/${fidOf(6, 1n)}`, { method: 'PUT', body: bytes(10) });
      expect(refused.json().error?.code).toBe('UGCFS_ERR_BLOCK_READONLY');
      await p.kill('SIGKILL');
    } finally {
      ns.close();
    }
  });
});

async function waitUntil(fn: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 50));
  }
}
