// The epoch fence (dataserver/epoch-fence.ts, epoch-route.ts): <data>/epoch's bytes are
// pinned; a request carrying x-ugcfs-epoch below the highest epoch seen is refused with 409
// UGCFS_ERR_STALE_EPOCH and does nothing, on fastify's routes and the needle routes answered
// ahead of it alike; a higher one is stored before the request runs, and survives SIGKILL.
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { callRaw, type RawResponse } from '../../src/clients/http-client.ts';
import { encodeFid } from '../../src/wire/file-id.ts';
import { HEADERS, type BlockReport } from '../../src/wire/protocol.ts';
import { decodeEpochFile, encodeEpochFile, EpochFence } from '../../dataserver/epoch-fence.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { run } from '../helpers/proc.ts';

const secret = randomBytes(24).toString('hex');
const bed = dataserverBed('ugcfs-epoch-', { secret });

const GOLDEN = 'ugcfs-epoch 1\nepoch 42\ncrc 07bf1ded\n';

describe('the epoch file, version 1', () => {
  it('has the golden bytes of the layout comment', () => {
    expect(encodeEpochFile(42).toString('latin1')).toBe(GOLDEN);
    expect(decodeEpochFile(Buffer.from(GOLDEN, 'latin1'))).toBe(42);
    expect(decodeEpochFile(encodeEpochFile(Number.MAX_SAFE_INTEGER))).toBe(Number.MAX_SAFE_INTEGER);
  });

  it('refuses a damaged or unknown file', () => {
    expect(() => decodeEpochFile(Buffer.from(GOLDEN.replace('epoch 42', 'epoch 43')))).toThrow(/crc mismatch/);
    expect(() => decodeEpochFile(Buffer.from(GOLDEN.replace('ugcfs-epoch 1', 'ugcfs-epoch 2')))).toThrow(/version/);
    expect(() => decodeEpochFile(Buffer.from(GOLDEN.slice(0, -1)))).toThrow();
    expect(() => decodeEpochFile(Buffer.from(''))).toThrow();
  });

  it('only goes up, written in the order asked, whatever the timing', async () => {
    const dir = join(bed.dir, 'unit');
    mkdirSync(dir);
    const f = await EpochFence.load(dir);
    expect(f.highest).toBe(0);
    expect(await f.admit(0, 'http')).toBe(true);
    // 6 and 9 asked at once, then 7 while both are on their way: 7 is already stale
    const six = f.admit(6, 'http');
    const nine = f.admit(9, 'heartbeat');
    expect(await f.admit(7, 'http')).toBe(false);
    expect(await six).toBe(true);
    expect(await nine).toBe(true);
    expect(decodeEpochFile(readFileSync(join(dir, 'epoch')))).toBe(9);
    expect(await f.admit(8, 'http')).toBe(false);
    expect((await EpochFence.load(dir)).highest).toBe(9);
    // a damaged file stops the start
    writeFileSync(join(dir, 'epoch'), GOLDEN.replace('42', '41'));
    await expect(EpochFence.load(dir)).rejects.toMatchObject({ code: 'UGCFS_ERR_BAD_USAGE' });
  });
});

describe('a data server fences requests by epoch', () => {
  const call = (url: string, path: string, epoch: string | undefined, o: { method?: 'GET' | 'POST' | 'PUT' | 'DELETE'; body?: unknown; headers?: Record<string, string>; secret?: string } = {}): Promise<RawResponse> =>
    callRaw(url + path, { method: o.method ?? 'POST', body: o.body, secret: o.secret ?? secret, headers: { ...(epoch === undefined ? {} : { [HEADERS.epoch]: epoch }), ...o.headers } });
  const code = (r: RawResponse) => (JSON.parse(r.body.toString()) as { error: { code: string } }).error.code;
  const report = async (url: string, id: number) => JSON.parse((await call(url, `/blocks/${id}`, undefined, { method: 'GET' })).body.toString()) as BlockReport;

  it('refuses a lower epoch (409, nothing done), stores a higher one first, and keeps it across SIGKILL', async () => {
    let ds = await bed.start('a');
    expect((await call(ds.url, '/blocks/1', '5', { body: {} })).status).toBe(201);
    // a lower epoch: refused, nothing done (no block 2, block 1 still writable)
    const stale = await call(ds.url, '/blocks/2', '3', { body: {} });
    expect(stale.status).toBe(409);
    expect(code(stale)).toBe('UGCFS_ERR_STALE_EPOCH');
    expect(stale.headers['x-request-id']).toBeTruthy();
    expect((await call(ds.url, '/blocks/2', undefined, { method: 'GET' })).status).toBe(404);
    expect(code(await call(ds.url, '/blocks/1/readonly', '4', { body: { readonly: true } }))).toBe('UGCFS_ERR_STALE_EPOCH');
    expect((await report(ds.url, 1)).readonly).toBe(false);
    // the needle routes answered ahead of fastify are fenced the same way (a repair PUT)
    const fid = encodeFid({ block: 1, key: 7n, cookie: 0x1234 });
    const data = randomBytes(3000);
    const put = await call(ds.url, `/needles/${fid}`, '2', { method: 'PUT', body: data, headers: { [HEADERS.repair]: '1' } });
    expect(code(put)).toBe('UGCFS_ERR_STALE_EPOCH');
    expect((await call(ds.url, `/needles/${fid}`, undefined, { method: 'GET' })).status).toBe(404);
    // no secret, or a malformed epoch: refused before the epoch counts for anything
    expect(code(await call(ds.url, '/blocks/3', '100', { body: {}, secret: 'wrong' }))).toBe('UGCFS_ERR_UNAUTHORIZED');
    for (const bad of ['x', '-1', '1.5', '99999999999999999']) expect(code(await call(ds.url, '/blocks/3', bad, { body: {} }))).toBe('UGCFS_ERR_BAD_REQUEST');
    // requests without the header are as before: a client's write and read
    expect((await call(ds.url, `/needles/${fid}`, undefined, { method: 'PUT', body: data })).status).toBe(201);
    expect((await call(ds.url, `/needles/${fid}`, undefined, { method: 'GET' })).body.equals(data)).toBe(true);
    // the same epoch, and a higher one, are taken
    expect((await call(ds.url, '/blocks/3', '5', { body: {} })).status).toBe(201);
    expect((await call(ds.url, '/blocks/1/readonly', '7', { body: { readonly: true } })).status).toBe(200);
    expect((await report(ds.url, 1)).readonly).toBe(true);
    expect(code(await call(ds.url, '/blocks/1/readonly', '5', { body: { readonly: false } }))).toBe('UGCFS_ERR_STALE_EPOCH');
    expect(await metric(ds.url, 'ugcfs_fenced_requests_total', { source: 'http' })).toBe(4);
    expect(await metric(ds.url, 'ugcfs_epoch_highest_seen')).toBe(7);
    expect(((await (await fetch(ds.url + '/healthz')).json()) as { epoch: number }).epoch).toBe(7);

    // SIGKILL: the epoch was on disk before the request ran
    await ds.kill('SIGKILL');
    expect(decodeEpochFile(readFileSync(join(bed.dir, 'a', 'epoch')))).toBe(7);
    ds = await bed.start('a');
    const after = await call(ds.url, '/blocks/1/readonly', '6', { body: { readonly: false } });
    expect(after.status).toBe(409);
    expect(code(after)).toBe('UGCFS_ERR_STALE_EPOCH');
    expect((await report(ds.url, 1)).readonly).toBe(true);
    expect((await call(ds.url, '/blocks/1/readonly', '8', { body: { readonly: false } })).status).toBe(200);
    expect((await report(ds.url, 1)).readonly).toBe(false);
  });

  it('many concurrent commands of rising epochs end with the highest stored', async () => {
    const ds = await bed.start('b');
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => call(ds.url, '/blocks', String(i + 1), { method: 'GET' })));
    // each was either taken or refused as stale (a higher one had been seen by then)
    for (const r of answers) expect([200, 409]).toContain(r.status);
    expect(answers[19]!.status).toBe(200);
    await ds.kill('SIGKILL');
    expect(decodeEpochFile(readFileSync(join(bed.dir, 'b', 'epoch')))).toBe(20);
  });

  it('a damaged epoch file stops the data server at start (exit 2)', async () => {
    const dir = join(bed.dir, 'c');
    mkdirSync(dir);
    writeFileSync(join(dir, 'epoch'), GOLDEN.replace('42', '41'));
    const r = await run(['dataserver', '--data', dir, '--port', '0', '--nameserver', 'http://127.0.0.1:9'], { env: { UGCFS_CLUSTER_SECRET: secret } });
    expect(r.code).toBe(2);
    expect(r.stdout + r.stderr).toContain('not a valid epoch file');
  });
});
