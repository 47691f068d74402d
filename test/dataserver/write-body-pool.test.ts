// Request bodies of the hot write routes are read into pooled buffers (buffer-pool.ts,
// --write-buffer-pool-bytes), which the next requests reuse. A buffer handed back while its
// bytes were still being appended or forwarded would let a later body overwrite them: this
// drives many concurrent PUTs and batches of distinct bytes, replicated to a second real data
// server, through a pool small enough to be reused all the time, and reads every file back
// byte-exact from both copies.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { encodeFid } from '../../src/wire/file-id.ts';
import { BATCH_CONTENT_TYPE, encodeNeedleBatch } from '../../src/wire/needle-batch.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { TEST_SECRET } from '../helpers/proc.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-bodypool-', { secret: SECRET });
const auth = { 'x-ugcfs-secret': SECRET };

describe('pooled write bodies', () => {
  it('concurrent PUTs and batches, replicated: every file reads back byte-exact from both copies', async () => {
    // 1 MiB of idle buffers: every size class here is handed out again and again
    const [primary, replica] = await Promise.all([bed.start('p', ['--write-buffer-pool-bytes', String(1 << 20)]), bed.start('r')]);
    for (const ds of [primary, replica]) {
      expect((await fetch(`${ds.url}/blocks/4`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    }
    const files = new Map<string, Buffer>();
    let key = 1;
    const next = (size: number) => {
      const k = key++;
      const fid = encodeFid({ block: 4, key: BigInt(k), cookie: k * 7 });
      const data = randomBytes(size);
      files.set(fid, data);
      return { fid, data };
    };
    const put = async () => {
      const { fid, data } = next(1000 + Math.floor(Math.random() * 40_000));
      const r = await fetch(`${primary.url}/needles/${fid}`, { method: 'PUT', headers: { ...auth, 'x-ugcfs-mime': 'image/jpeg', 'x-ugcfs-replicas': replica.url }, body: new Uint8Array(data) });
      expect(r.status, await r.text()).toBe(201);
    };
    const batch = async () => {
      const records = Array.from({ length: 2 + Math.floor(Math.random() * 6) }, () => {
        const { fid, data } = next(500 + Math.floor(Math.random() * 30_000));
        return { fid, mime: 'image/png', owner: 'o', uploadTime: 0, crc: crc32c(data), data };
      });
      const r = await fetch(`${primary.url}/blocks/4/needles`, {
        method: 'POST',
        headers: { ...auth, 'content-type': BATCH_CONTENT_TYPE, 'x-ugcfs-replicas': replica.url },
        body: new Uint8Array(Buffer.concat(encodeNeedleBatch(records))),
      });
      const text = await r.text();
      expect(r.status, text).toBe(200);
      for (const item of (JSON.parse(text) as { results: Array<Record<string, unknown>> }).results) expect(item.error, JSON.stringify(item)).toBeUndefined();
    };
    await Promise.all(Array.from({ length: 12 }, async (_, w) => {
      for (let i = 0; i < 25; i++) await (w % 2 === 0 ? put() : batch());
    }));
    expect(files.size).toBeGreaterThan(300);
    for (const ds of [primary, replica]) {
      for (const [fid, data] of files) {
        const r = await fetch(`${ds.url}/needles/${fid}`, { headers: auth });
        expect(r.status, fid).toBe(200);
        expect(Buffer.compare(Buffer.from(await r.arrayBuffer()), data), `${fid} on ${ds.url}`).toBe(0);
      }
    }
  }, 120_000);
});
