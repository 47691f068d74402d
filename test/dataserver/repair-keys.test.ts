// What verify --repair needs from a data server: the key list of a block copy (live and
// tombstoned keys, tombstones surviving compaction), and repair writes that land on sealed or
// read-only blocks for this copy only, never over an existing key. Against a real
// `ugcfs dataserver` process and a real store.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { BlockStore } from '../../dataserver/block-store.ts';
import { encodeFid } from '../../src/wire/file-id.ts';
import { DS_ROUTES, HEADERS, type BlockKeyState, type BlockReport } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { TEST_SECRET, type Proc } from '../helpers/proc.ts';
import { recordData } from './record-data.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-repair-keys-', { secret: SECRET });

const meta = (key: bigint) => ({ key, cookie: Number(key), uploadTime: 1_700_000_000_000, mime: 'image/jpeg', owner: 'seller-1' });

async function call(url: string, init: { method?: string; body?: Buffer | string; headers?: Record<string, string> } = {}) {
  const body = typeof init.body === 'string' || init.body === undefined ? init.body : new Uint8Array(init.body);
  const r = await fetch(url, { method: init.method, body, headers: { 'x-ugcfs-secret': SECRET, ...(init.headers ?? {}) } });
  const got = Buffer.from(await r.arrayBuffer());
  return { status: r.status, body: got, json: () => JSON.parse(got.toString('utf8')) as { error?: { code: string } } & Record<string, unknown> };
}

describe('block key lists', () => {
  it('list live keys with their CRC and size and deleted keys, and keep deleted keys through compaction', async () => {
    const s = await BlockStore.open({ dir: join(bed.dir, 'store'), blockSize: 1 << 20 });
    try {
      await s.createBlock(1);
      const keys = [1n, 2n, 3n, 4n, 5n];
      for (const k of keys) await s.put(1, meta(k), recordData(k, 2000));
      await s.delete(1, 2n, 2);
      await s.delete(1, 4n, 4);
      const before = await s.keys(1);
      expect(before.map((k) => [k.key, k.deleted])).toEqual([['1', false], ['2', true], ['3', false], ['4', true], ['5', false]]);
      const three = before.find((k) => k.key === '3')!;
      expect(three.size).toBe(recordData(3n, 2000).length);
      expect(three.cookie).toBe(3);
      expect(three.crc).toBe((await s.read(1, 3n, 3)).dataCrc);

      const r = await s.compact(1);
      expect(r.afterBytes).toBeLessThan(r.beforeBytes);
      expect(await s.keys(1)).toEqual(before);
      expect(s.block(1).report().deletedBytes, 'kept tombstones are not reclaimable').toBe(0);
      expect((await s.scrub(1)).bad).toEqual([]);
      // compacting again does not grow the block
      const again = await s.compact(1);
      expect(again.afterBytes).toBe(r.afterBytes);
    } finally {
      await s.close();
    }
  });
});

describe('repair writes over HTTP', () => {
  let ds: Proc;
  const block = 3;
  const fid = (key: bigint) => encodeFid({ block, key, cookie: 77 });
  const needle = (key: bigint) => ds.url + DS_ROUTES.needle.replace(':fid', fid(key));

  beforeAll(async () => {
    ds = await bed.start('ds', ['--block-size', '64k']);
    expect((await call(`${ds.url}/blocks/${block}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } })).status).toBe(201);
  });

  it('a repair PUT lands on a read-only block; a plain PUT does not; the key list shows it', async () => {
    await call(`${ds.url}/blocks/${block}/readonly`, { method: 'POST', body: '{"readonly":true}', headers: { 'content-type': 'application/json' } });
    const data = recordData(11n, 3000);
    const plain = await call(needle(11n), { method: 'PUT', body: data });
    expect(plain.status).toBe(409);
    expect(plain.json().error?.code).toBe('UGCFS_ERR_BLOCK_READONLY');
    const repaired = await call(needle(11n), { method: 'PUT', body: data, headers: { [HEADERS.repair]: '1', [HEADERS.uploadTime]: '1600000000000', [HEADERS.mime]: 'image/png' } });
    expect(repaired.status).toBe(201);
    const got = await fetch(needle(11n), { headers: { 'x-ugcfs-secret': SECRET } });
    expect(Buffer.from(await got.arrayBuffer()).equals(data)).toBe(true);
    expect(got.headers.get(HEADERS.uploadTime)).toBe('1600000000000');
    const keys = (await call(ds.url + DS_ROUTES.blockKeys.replace(':id', String(block)))).json() as unknown as BlockKeyState[];
    expect(keys).toEqual([{ key: '11', cookie: 77, deleted: false, crc: Number(repaired.json().crc), size: data.length }]);
  });

  it('a repair PUT never replaces an existing key; the very same record is "existed"', async () => {
    const same = await call(needle(11n), { method: 'PUT', body: recordData(11n, 3000), headers: { [HEADERS.repair]: '1' } });
    expect(same.status).toBe(201);
    expect(same.json().existed).toBe(true);
    const other = await call(needle(11n), { method: 'PUT', body: recordData(12n, 3000), headers: { [HEADERS.repair]: '1' } });
    expect(other.status).toBe(409);
    expect(other.json().error?.code).toBe('UGCFS_ERR_DUPLICATE_KEY');
  });

  it('bad repair headers are 400 and write nothing', async () => {
    const before = ((await call(`${ds.url}/blocks/${block}`)).json() as unknown as BlockReport).size;
    const forwarded = await call(needle(13n), { method: 'PUT', body: recordData(13n, 100), headers: { [HEADERS.repair]: '1', [HEADERS.replicas]: 'http://127.0.0.1:9' } });
    expect(forwarded.status).toBe(400);
    expect(forwarded.json().error?.code).toBe('UGCFS_ERR_BAD_REQUEST');
    const odd = await call(needle(13n), { method: 'PUT', body: recordData(13n, 100), headers: { [HEADERS.repair]: 'yes' } });
    expect(odd.status).toBe(400);
    const del = await call(needle(11n), { method: 'DELETE', headers: { [HEADERS.repair]: '1', [HEADERS.replicas]: 'http://127.0.0.1:9' } });
    expect(del.status).toBe(400);
    expect(((await call(`${ds.url}/blocks/${block}`)).json() as unknown as BlockReport).size).toBe(before);
    expect((await call(needle(11n))).status).toBe(200);
  });

  it('a repair DELETE tombstones this copy of a read-only block, and the key list shows it deleted', async () => {
    expect((await call(needle(11n), { method: 'DELETE', headers: { [HEADERS.repair]: '1' } })).status).toBe(204);
    expect((await call(needle(11n))).status).toBe(404);
    const keys = (await call(ds.url + DS_ROUTES.blockKeys.replace(':id', String(block)))).json() as unknown as BlockKeyState[];
    expect(keys).toEqual([{ key: '11', cookie: 77, deleted: true, crc: 0, size: 0 }]);
    expect((await call(ds.url + DS_ROUTES.blockKeys.replace(':id', '999'))).json().error?.code).toBe('UGCFS_ERR_BLOCK_NOT_FOUND');
    expect((await call(ds.url + DS_ROUTES.blockKeys.replace(':id', 'x'))).status).toBe(400);
  });
});
