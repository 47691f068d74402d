// The write routes answered ahead of fastify (dataserver/needle-write-route.ts, their only
// implementation) against real `ugcfs dataserver` processes: what they keep of fastify's
// ways — request ids (echoed, made up, forwarded to replicas), the body limit for bodies
// without a declared length, metrics, the same answer for a URL with a query string, a
// refused write's body drained (up to 1 MiB) or its connection closed as fastify's are — and
// graceful shutdown: a write in flight when SIGTERM arrives is finished and acknowledged
// before the exit.
import { Agent as HttpAgent, request as httpRequest, createServer, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { encodeFid } from '../../src/wire/file-id.ts';
import { BATCH_CONTENT_TYPE, encodeNeedleBatch } from '../../src/wire/needle-batch.ts';
import type { WriteResult } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { TEST_SECRET, waitFor, type Proc } from '../helpers/proc.ts';
import { open, target } from '../security/raw-http.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-dswrite-', { secret: SECRET, args: ['--block-size', '64k'] });
const startDs = (name: string, env: Record<string, string> = {}) => bed.start(name, [], env);

interface SocketAnswer {
  status: number;
  connection: string | undefined;
  /** latin1, so binary bodies come back byte for byte */
  body: string;
}

/** The answers arriving on a raw socket, in order, and whether the server has closed it. */
function answersOn(s: Socket): { got: SocketAnswer[]; closed: boolean } {
  const on = { got: [] as SocketAnswer[], closed: false };
  let buf = Buffer.alloc(0);
  s.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk]);
    for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
      const head = buf.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      on.got.push({ status: Number(head.split(' ')[1]), connection: /\r\nconnection: *(\S+)/i.exec(head)?.[1], body: buf.subarray(end + 4, end + 4 + length).toString('latin1') });
      buf = buf.subarray(end + 4 + length);
    }
  });
  s.on('close', () => (on.closed = true));
  s.on('error', () => undefined);
  return on;
}

async function call(url: string, init: RequestInit = {}): Promise<{ status: number; headers: Headers; body: Buffer; json: () => Record<string, any> }> {
  const headers = new Headers(init.headers);
  headers.set('x-ugcfs-secret', SECRET);
  const r = await fetch(url, { ...init, headers });
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

async function createBlock(ds: Proc, id: number): Promise<void> {
  const r = await call(`${ds.url}/blocks/${id}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  expect(r.status).toBe(201);
}

const fidOf = (block: number, key: bigint) => encodeFid({ block, key, cookie: 0x5eed });
const bytes = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 17 + seed) & 0xff));

/** A PUT whose body is sent in chunks with no declared length (chunked transfer encoding). */
function putChunked(url: string, chunks: Buffer[]): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: 'PUT', headers: { 'x-ugcfs-secret': SECRET, 'transfer-encoding': 'chunked' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('PUT /needles/<fid> ahead of fastify', () => {
  let a: Proc;
  let b: Proc;
  beforeAll(async () => {
    [a, b] = await Promise.all([startDs('a'), startDs('b', { UGCFS_LOG_LEVEL: 'debug' })]);
    await createBlock(a, 3);
    await createBlock(b, 3);
  });

  it('checks the secret on every write of a keep-alive connection that already proved it', async () => {
    const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    const put = (key: bigint, headers: Record<string, string>) =>
      new Promise<{ status: number; port: number; body: string }>((resolve, reject) => {
        const body = bytes(64, Number(key));
        const req = httpRequest(`${a.url}/needles/${fidOf(3, key)}`, { method: 'PUT', agent, headers: { 'content-length': body.length, ...headers } }, (res) => {
          const chunks: Buffer[] = [];
          const port = res.socket.localPort!;
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode!, port, body: Buffer.concat(chunks).toString() }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      const first = await put(900n, { 'x-ugcfs-secret': SECRET });
      expect(first.status).toBe(201);
      const tries: Array<[bigint, Record<string, string>, number]> = [
        [901n, { 'x-ugcfs-secret': 'wrong' }, 401],
        [902n, {}, 401],
        [903n, { 'x-ugcfs-secret': SECRET.slice(0, -1) }, 401],
        [904n, { 'x-ugcfs-secret': SECRET }, 201],
        [905n, { authorization: `Bearer ${SECRET}` }, 201],
        [906n, { 'x-ugcfs-secret': `${SECRET}x` }, 401],
      ];
      for (const [key, headers, status] of tries) {
        const r = await put(key, headers);
        expect(r.port, 'same connection').toBe(first.port);
        expect(r.status, JSON.stringify(headers)).toBe(status);
        if (status === 401) expect(JSON.parse(r.body).error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
      }
      // refused writes stored nothing
      for (const key of [901n, 902n, 903n, 906n]) expect((await call(`${a.url}/needles/${fidOf(3, key)}`)).status).toBe(404);
    } finally {
      agent.destroy();
    }
  });

  it('echoes a given request id, makes one up otherwise, and forwards it to the replicas', async () => {
    const given = await call(`${a.url}/needles/${fidOf(3, 1n)}`, { method: 'PUT', body: bytes(100), headers: { 'x-request-id': 'write-abc.1' } });
    expect(given.status).toBe(201);
    expect(given.headers.get('x-request-id')).toBe('write-abc.1');
    const made = await call(`${a.url}/needles/${fidOf(3, 2n)}`, { method: 'PUT', body: bytes(100) });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // b already holds key 3 with other bytes: it refuses the forward and logs why under the
    // primary's request id; the primary refuses the write.
    expect((await call(`${b.url}/needles/${fidOf(3, 3n)}`, { method: 'PUT', body: bytes(50, 9) })).status).toBe(201);
    const refused = await call(`${a.url}/needles/${fidOf(3, 3n)}`, { method: 'PUT', body: bytes(50), headers: { 'x-request-id': 'fwd-77', 'x-ugcfs-replicas': b.url } });
    expect(refused.status).toBe(502);
    expect(refused.json().error.code).toBe('UGCFS_ERR_REPLICATION');
    expect(refused.headers.get('x-request-id')).toBe('fwd-77');
    const line = await waitFor('the replica logs the refusal', () => b.lines.find((l) => l.includes('"reqId":"fwd-77"')));
    expect(line).toContain('UGCFS_ERR_DUPLICATE_KEY');
    expect((await call(`${a.url}/needles/${fidOf(3, 3n)}`)).status).toBe(404);
  });

  it('a chunked body past the block size -> 413 UGCFS_ERR_TOO_LARGE, nothing stored, connection still usable', async () => {
    const fid = fidOf(3, 10n);
    const r = await putChunked(`${a.url}/needles/${fid}`, Array.from({ length: 5 }, (_, i) => bytes(16 * 1024, i)));
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body).error.code).toBe('UGCFS_ERR_TOO_LARGE');
    expect((await call(`${a.url}/needles/${fid}`)).status).toBe(404);
    const small = await putChunked(`${a.url}/needles/${fidOf(3, 11n)}`, [bytes(1000), bytes(1000, 2)]);
    expect(small.status).toBe(201);
    expect(JSON.parse(small.body)).toMatchObject({ fid: fidOf(3, 11n), size: 2000 });
    expect(Buffer.compare((await call(`${a.url}/needles/${fidOf(3, 11n)}`)).body, Buffer.concat([bytes(1000), bytes(1000, 2)]))).toBe(0);
  });

  it('a refused write drains a body up to 1 MiB and keeps its connection; a bigger one, or a 413, closes it', async () => {
    const kept = fidOf(3, 50n);
    expect((await call(`${a.url}/needles/${kept}`, { method: 'PUT', body: bytes(700, 5) })).status).toBe(201);
    const { host, port } = target(a.url);
    const head = (method: string, path: string, secret: string, length: number) =>
      `${method} ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nX-Ugcfs-Secret: ${secret}\r\nContent-Length: ${length}\r\n\r\n`;
    // 500 KB with a wrong secret: answered 401 after its first KB, the rest then read and
    // dropped, and the same socket answers the next request
    const s = await open(a.url);
    const on = answersOn(s);
    s.write(head('PUT', `/needles/${fidOf(3, 51n)}`, 'wrong', 500_000));
    s.write(bytes(1000));
    const refused = await waitFor('the 401', () => on.got[0]);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
    expect(refused.connection).toBe('keep-alive');
    s.write(bytes(499_000));
    s.write(head('GET', `/needles/${kept}`, SECRET, 0));
    const next = await waitFor('the next answer on the same socket', () => on.got[1]);
    expect(next.status).toBe(200);
    expect(Buffer.compare(Buffer.from(next.body, 'latin1'), bytes(700, 5))).toBe(0);
    expect(on.closed).toBe(false);
    s.destroy();
    expect((await call(`${a.url}/needles/${fidOf(3, 51n)}`)).status).toBe(404);
    // past 1 MiB with a wrong secret, or over the block size (413): answered after the first
    // KB, and the connection closed rather than drained
    for (const [secret, length, status] of [['wrong', 2 * 1024 * 1024, 401], [SECRET, 200_000, 413]] as const) {
      const big = await open(a.url);
      const bigOn = answersOn(big);
      big.write(head('PUT', `/needles/${fidOf(3, 52n)}`, secret, length));
      big.write(bytes(1000));
      const answer = await waitFor(`the ${status}`, () => bigOn.got[0]);
      expect(answer.status).toBe(status);
      expect(answer.connection).toBe('close');
      await waitFor(`the close after the ${status}`, () => bigOn.closed);
      big.destroy();
    }
  });

  it('a URL with a query string gets the same answers, counted under the same routes', async () => {
    const counted = (route: string, method: string, status: string) => metric(a.url, 'ugcfs_http_requests_total', { route, method, status });
    const before = { put: await counted('/needles/:fid', 'PUT', '201'), batch: await counted('/blocks/:id/needles', 'POST', '200') };
    const fid = fidOf(3, 20n);
    const r = await call(`${a.url}/needles/${fid}?x=/1`, { method: 'PUT', body: bytes(300), headers: { 'x-request-id': 'q-1' } });
    expect(r.status).toBe(201);
    expect(r.json()).toMatchObject({ fid, size: 300 } satisfies Partial<WriteResult>);
    expect(r.headers.get('x-request-id')).toBe('q-1');
    const bad = await call(`${a.url}/needles/${fid}?x=1`, { method: 'PUT', body: bytes(300), headers: { 'x-ugcfs-owner': 'x'.repeat(300) } });
    expect(bad.status).toBe(400);
    expect(bad.json().error.code).toBe('UGCFS_ERR_BAD_REQUEST');
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const enc = await call(`${a.url}/needles/%E0%A4%A`, { method: 'PUT', body: bytes(3) });
    expect(enc.status).toBe(400);
    expect(enc.json().error.code).toBe('UGCFS_ERR_BAD_FID');

    const data = bytes(200, 4);
    const frame = Buffer.concat(encodeNeedleBatch([{ fid: fidOf(3, 21n), mime: 'image/png', owner: 'o', uploadTime: 0, crc: crc32c(data), data }]));
    const batch = await call(`${a.url}/blocks/3/needles?x=1`, { method: 'POST', headers: { 'content-type': BATCH_CONTENT_TYPE, 'x-request-id': 'q-2' }, body: frame });
    expect(batch.status).toBe(200);
    expect(batch.headers.get('x-request-id')).toBe('q-2');
    expect(batch.json().results).toMatchObject([{ fid: fidOf(3, 21n), size: 200 }]);
    expect(Buffer.compare((await call(`${a.url}/needles/${fidOf(3, 21n)}`)).body, data)).toBe(0);
    // A block id that is not one is refused before the body is read, with or without a query.
    for (const url of [`${a.url}/blocks/x1/needles`, `${a.url}/blocks/x1/needles?x=1`, `${a.url}/blocks//needles`]) {
      const refused = await call(url, { method: 'POST', headers: { 'content-type': BATCH_CONTENT_TYPE }, body: frame });
      expect(refused.status, url).toBe(400);
      expect(refused.json().error.code, url).toBe('UGCFS_ERR_BAD_REQUEST');
    }
    expect(await counted('/needles/:fid', 'PUT', '201')).toBe(before.put + 1);
    expect(await counted('/blocks/:id/needles', 'POST', '200')).toBe(before.batch + 1);
  });

  it('counts its requests under the route and status fastify would use', async () => {
    const puts = (status: string) => metric(a.url, 'ugcfs_http_requests_total', { route: '/needles/:fid', method: 'PUT', status });
    const before = { ok: await puts('201'), refused: await puts('400') };
    for (let i = 0; i < 3; i++) expect((await call(`${a.url}/needles/${fidOf(3, 30n + BigInt(i))}`, { method: 'PUT', body: bytes(10) })).status).toBe(201);
    expect((await call(`${a.url}/needles/${fidOf(3, 40n)}`, { method: 'PUT' })).status).toBe(400);
    expect(await puts('201')).toBe(before.ok + 3);
    expect(await puts('400')).toBe(before.refused + 1);
  });
});

describe('graceful shutdown', () => {
  // A replica that holds its answer until told: it keeps a write in flight on the primary.
  let release: (() => void) | undefined;
  let forwarded: Promise<void>;
  let replica: Server;
  let replicaUrl: string;
  beforeAll(async () => {
    let arrived!: () => void;
    forwarded = new Promise((r) => (arrived = r));
    replica = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        arrived();
        release = () => {
          res.writeHead(201, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ fid: req.url!.split('/').pop(), size: Buffer.concat(chunks).length, crc: Number(req.headers['x-ugcfs-crc']) }));
        };
      });
    });
    await new Promise<void>((r) => replica.listen(0, '127.0.0.1', r));
    const addr = replica.address();
    replicaUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(() => new Promise<void>((r) => replica.close(() => r())));

  it('a write in flight at SIGTERM is finished and acknowledged, then the process exits 0', async () => {
    const ds = await startDs('g');
    await createBlock(ds, 5);
    const fid = fidOf(5, 1n);
    const data = bytes(4000, 5);
    const put = call(`${ds.url}/needles/${fid}`, { method: 'PUT', body: data, headers: { 'x-ugcfs-replicas': replicaUrl } });
    await forwarded;
    ds.child.kill('SIGTERM');
    await waitFor('shutdown to begin', () => ds.lines.some((l) => l.includes('shutting down')));
    release!();
    const r = await put;
    expect(r.status).toBe(201);
    expect(r.json()).toMatchObject({ fid, size: 4000 });
    expect(await ds.exited).toBe(0);
    const again = await startDs('g');
    const got = await call(`${again.url}/needles/${fid}`);
    expect(got.status).toBe(200);
    expect(Buffer.compare(got.body, data)).toBe(0);
  });
});
