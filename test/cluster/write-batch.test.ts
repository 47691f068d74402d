// Coalesced writes (src/clients/write-coalescer.ts, dataserver/needle-batch-write.ts), with real
// processes: concurrent client writes to one block travel as one batch request to the primary
// and one to each replica, and every record still ends on its own — refused alone when bad,
// undone everywhere when a replica misses it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { decodeFid, encodeFid, newCookie } from '../../src/wire/file-id.ts';
import { callJson, sendBytes } from '../../src/clients/http-client.ts';
import { BATCH_CONTENT_TYPE, encodeNeedleBatch, type BatchRecord, type BatchWriteResult } from '../../src/wire/needle-batch.ts';
import { DS_ROUTES, HEADERS, NS_ROUTES, type AssignResult, type BlockReport } from '../../src/wire/protocol.ts';
import { SECRET_HEADER } from '../../src/base/secret.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { readCopy } from '../helpers/needle-copy.ts';

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ dataservers: 3, replicas: 2, racks: ['a', 'b', 'c'], blockSize: 64 * 1024 * 1024 });
});
afterAll(async () => {
  await c?.stop();
});

/** Sum and count of ugcfs_write_batch_records over every data server. */
async function batchRecords(): Promise<{ sum: number; count: number }> {
  let sum = 0;
  let count = 0;
  for (const d of c.dataservers) {
    const m = await scrapeMetrics(d.url);
    sum += m.value('ugcfs_write_batch_records_sum');
    count += m.value('ugcfs_write_batch_records_count');
  }
  return { sum, count };
}

function record(fid: string, data: Buffer, over: Partial<BatchRecord> = {}): BatchRecord {
  return { fid, mime: 'image/jpeg', owner: 'seller-7', uploadTime: 0, crc: crc32c(data), data, ...over };
}

async function postBatch(primary: string, block: number, records: BatchRecord[], peers: string[]): Promise<{ status: number; json: unknown }> {
  const headers: Record<string, string> = { 'content-type': BATCH_CONTENT_TYPE, [SECRET_HEADER]: c.secret };
  if (peers.length > 0) headers[HEADERS.replicas] = peers.join(',');
  const res = await sendBytes('POST', primary + DS_ROUTES.blockNeedles.replace(':id', String(block)), Buffer.concat(encodeNeedleBatch(records)), headers, 10_000);
  return { status: res.status, json: JSON.parse(res.body.toString() || 'null') };
}

async function assignMany(count: number): Promise<AssignResult & { fids: string[] }> {
  return (await callJson(c.nameserver.url + NS_ROUTES.assign, { method: 'POST', body: { count }, secret: c.secret })) as AssignResult & { fids: string[] };
}

describe('coalesced writes', () => {
  it('go to the primary and each replica as batches, every file readable on both copies', async () => {
    const client = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
    const before = await batchRecords();
    const files = Array.from({ length: 48 }, (_, i) => Buffer.alloc(3000 + i, i));
    const written = await Promise.all(files.map((data, i) => client.write(data, { mime: 'image/png', owner: `o${i}` })));
    const after = await batchRecords();
    // 48 writes in one turn: far fewer requests than records, on the primary and on the replica.
    expect(after.sum - before.sum).toBeGreaterThanOrEqual(2 * 48);
    expect(after.count - before.count).toBeLessThan(48);
    for (const [i, w] of written.entries()) {
      expect(w.replicas).toHaveLength(2);
      for (const ds of w.replicas) {
        const r = await readCopy(ds.url, w.fid, c.secret);
        expect(r.status).toBe(200);
        expect(r.body.equals(files[i]!)).toBe(true);
        expect(r.mime).toBe('image/png');
        expect(r.owner).toBe(`o${i}`);
      }
    }
    // The primary chose one upload time per record, and the replica holds the same one.
    const w0 = written[0]!;
    const [a, b] = await Promise.all(w0.replicas.map((ds) => readCopy(ds.url, w0.fid, c.secret)));
    expect(Number(a!.uploadTime)).toBeGreaterThan(Date.now() - 60_000);
    expect(b!.uploadTime).toBe(a!.uploadTime);
  });

  it('refuses a bad record alone: the good ones in the same batch land on every replica', async () => {
    const a = await assignMany(4);
    const [primary, ...peers] = a.replicas;
    const other = encodeFid({ block: a.block + 1000, key: decodeFid(a.fids[2]!).key, cookie: newCookie() });
    const good = Buffer.from('a good record');
    const damaged = record(a.fids[1]!, Buffer.from('damaged on the way'));
    damaged.crc ^= 1;
    const res = await postBatch(primary!.url, a.block, [
      record(a.fids[0]!, good),
      damaged,
      record(other, Buffer.from('in another block')),
      record(a.fids[3]!, Buffer.from('bad type'), { mime: 'not a media type' }),
    ], peers.map((p) => p.url));
    expect(res.status).toBe(200);
    const results = (res.json as BatchWriteResult).results;
    expect(results[0]).toMatchObject({ fid: a.fids[0], size: good.length, crc: crc32c(good) });
    expect(results.slice(1).map((r) => ('error' in r ? r.error.code : 'stored'))).toEqual(['UGCFS_ERR_BAD_REQUEST', 'UGCFS_ERR_BAD_REQUEST', 'UGCFS_ERR_BAD_REQUEST']);
    for (const ds of a.replicas) {
      expect((await readCopy(ds.url, a.fids[0]!, c.secret)).body.equals(good)).toBe(true);
      expect((await readCopy(ds.url, a.fids[1]!, c.secret)).status).toBe(404);
      expect((await readCopy(ds.url, a.fids[3]!, c.secret)).status).toBe(404);
    }
  });

  it('refuses a malformed frame whole, and writes nothing of it', async () => {
    const a = await assignMany(2);
    const [primary] = a.replicas;
    const blockUrl = primary!.url + DS_ROUTES.block.replace(':id', String(a.block));
    const before = (await callJson(blockUrl, { secret: c.secret })) as BlockReport;
    const body = Buffer.concat(encodeNeedleBatch([record(a.fids[0]!, Buffer.from('one')), record(a.fids[1]!, Buffer.from('two'))]));
    const res = await sendBytes('POST', primary!.url + DS_ROUTES.blockNeedles.replace(':id', String(a.block)), body.subarray(0, body.length - 2), { 'content-type': BATCH_CONTENT_TYPE, [SECRET_HEADER]: c.secret }, 10_000);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).error.code).toBe('UGCFS_ERR_BAD_REQUEST');
    const after = (await callJson(blockUrl, { secret: c.secret })) as BlockReport;
    expect(after).toEqual(before);
    expect((await readCopy(primary!.url, a.fids[0]!, c.secret)).status).toBe(404);
  });

  it('fails every record a replica did not store, and leaves none of them readable anywhere', async () => {
    const a = await assignMany(3);
    const [primary] = a.replicas;
    // A peer that answers nothing: the forward fails for the whole batch.
    const res = await postBatch(primary!.url, a.block, a.fids.map((fid, i) => record(fid, Buffer.alloc(100, i))), ['http://127.0.0.1:9']);
    expect(res.status).toBe(200);
    const results = (res.json as BatchWriteResult).results;
    expect(results.map((r) => ('error' in r ? r.error.code : 'stored'))).toEqual(['UGCFS_ERR_REPLICATION', 'UGCFS_ERR_REPLICATION', 'UGCFS_ERR_REPLICATION']);
    for (const fid of a.fids) expect((await readCopy(primary!.url, fid, c.secret)).status).toBe(404);
  });

  it('refuses at once a write whose owner no data server would take, the writes beside it land', async () => {
    const client = new ClusterClient({ nameserver: c.nameserver.url, secret: c.secret });
    const results = await Promise.allSettled([
      ...Array.from({ length: 6 }, (_, i) => client.write(Buffer.alloc(500, i), { owner: 'fine' })),
      client.write(Buffer.alloc(500, 9), { owner: 'x'.repeat(300) }),
      client.write(Buffer.alloc(500, 10), { owner: 'Łukasz' }),
    ]);
    expect(results.slice(0, 6).every((r) => r.status === 'fulfilled')).toBe(true);
    for (const r of results.slice(6)) expect(r.status === 'rejected' ? (r.reason as { code?: string }).code : 'stored').toBe('UGCFS_ERR_BAD_REQUEST');
  });
});

describe('coalesced writes when the primary dies', () => {
  let d: Cluster;
  beforeAll(async () => {
    d = await startCluster({ dataservers: 3, replicas: 2, racks: ['a', 'b', 'c'], deadAfterMs: 700 });
  });
  afterAll(async () => {
    await d?.stop();
  });

  it('fails the writes queued for it over to other blocks: every write lands, readable, none on the dead server', async () => {
    const client = new ClusterClient({ nameserver: d.nameserver.url, secret: d.secret });
    // One write fetches an assign batch: the next fids are in the same block, on the same primary.
    const first = await client.write(Buffer.from('first'));
    const dead = first.replicas[0]!;
    await d.killDataserver(d.dsIds.indexOf(dead.id), 'SIGKILL');
    await d.waitFor((s) => s.dataservers.some((x) => x.id === dead.id && !x.alive), `${dead.id} dead`, 10_000);
    const files = Array.from({ length: 20 }, (_, i) => Buffer.alloc(700 + i, i));
    const written = await Promise.all(files.map((f) => client.write(f)));
    for (const [i, w] of written.entries()) {
      expect(w.replicas.map((r) => r.id)).not.toContain(dead.id);
      expect((await client.read(w.fid)).data.equals(files[i]!)).toBe(true);
    }
  });
});
