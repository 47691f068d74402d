// The hot routes' buffer pool (dataserver/buffer-pool.ts): the class on its own, then
// a real data server proving a buffer still on its way to a slow reader is never refilled
// for another read.
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../dataserver/buffer-pool.ts';
import { encodeFid } from '../../src/wire/file-id.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { TEST_SECRET } from '../helpers/proc.ts';

describe('BufferPool', () => {
  it('hands a given-back buffer out again for a record of the same size class', () => {
    const pool = new BufferPool(1 << 20);
    const a = pool.take(20_000);
    expect(a.length).toBe(20_000);
    expect(a.buffer.byteLength).toBe(32 * 1024);
    pool.give(a);
    expect(pool.idleBytes).toBe(32 * 1024);
    const b = pool.take(17_000);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.idleBytes).toBe(0);
    // another class gets its own
    expect(pool.take(5000).buffer).not.toBe(a.buffer);
  });

  it('never takes in a buffer it did not make (node shares its small-allocation slab)', () => {
    const pool = new BufferPool(1 << 20);
    const slab = Buffer.allocUnsafe(100); // a view of node's shared 8 KB pool
    pool.give(slab);
    pool.give(Buffer.alloc(8192));
    expect(pool.idleBytes).toBe(0);
    expect(pool.take(8000).buffer).not.toBe(slab.buffer);
  });

  it('holds at most its cap idle, and records over the largest class get their own buffer', () => {
    const pool = new BufferPool(64 * 1024, 32 * 1024);
    const bufs = [pool.take(30_000), pool.take(30_000), pool.take(30_000)];
    for (const b of bufs) pool.give(b);
    expect(pool.idleBytes).toBe(64 * 1024);
    const big = pool.take(40_000);
    expect(big.buffer.byteLength).toBe(40_000);
    pool.give(big);
    expect(pool.idleBytes).toBe(64 * 1024);
  });

  it('with a cap of 0 every take is a fresh buffer', () => {
    const pool = new BufferPool(0);
    const a = pool.take(1000);
    pool.give(a);
    expect(pool.idleBytes).toBe(0);
    expect(pool.take(1000).buffer).not.toBe(a.buffer);
  });
});

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-readpool-', { secret: SECRET });

describe('pooled reads on a data server', () => {
  it('responses still queued for a reader that stopped reading keep their bytes while other reads reuse buffers', async () => {
    const ds = await bed.start('p');
    const h = { 'x-ugcfs-secret': SECRET };
    await fetch(`${ds.url}/blocks/1`, { method: 'POST', headers: { ...h, 'content-type': 'application/json' }, body: '{}' });
    // One size class (512 KiB) for every file.
    const files = Array.from({ length: 6 }, (_, i) => ({ fid: encodeFid({ block: 1, key: BigInt(i + 1), cookie: 1000 + i }), data: randomBytes(400_000 + i) }));
    for (const f of files) {
      const r = await fetch(`${ds.url}/needles/${f.fid}`, { method: 'PUT', headers: h, body: f.data });
      expect(r.status).toBe(201);
    }
    // A reader that pipelines 12 requests for file 0 (about 5 MB, more than loopback's socket
    // buffers take in: node keeps the later answers queued in the process) and reads nothing.
    const PIPELINED = 12;
    const url = new URL(ds.url);
    const sock = connect(Number(url.port), url.hostname);
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.pause();
    sock.write(`GET /needles/${files[0]!.fid} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-ugcfs-secret: ${SECRET}\r\n\r\n`.repeat(PIPELINED));
    await new Promise((r) => setTimeout(r, 300));
    // Meanwhile many reads of the other files, through buffers of the same class.
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        files.slice(1).map(async (f) => {
          const r = await fetch(`${ds.url}/needles/${f.fid}`, { headers: h });
          expect(Buffer.from(await r.arrayBuffer()).equals(f.data)).toBe(true);
        }),
      );
    }
    // Now drain the slow reader: every answer must be file 0's bytes exactly.
    const want = files[0]!.data;
    const chunks: Buffer[] = [];
    const bodies: Buffer[] = [];
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`slow reader got ${bodies.length} of ${PIPELINED} answers`)), 20_000);
      sock.on('data', (c: Buffer) => {
        chunks.push(c);
        let all = Buffer.concat(chunks);
        for (;;) {
          const end = all.indexOf('\r\n\r\n');
          if (end < 0) break;
          const head = all.subarray(0, end).toString('latin1');
          const len = Number(/content-length: (\d+)/i.exec(head)?.[1]);
          if (all.length < end + 4 + len) break;
          expect(head.startsWith('HTTP/1.1 200')).toBe(true);
          bodies.push(all.subarray(end + 4, end + 4 + len));
          all = all.subarray(end + 4 + len);
        }
        chunks.length = 0;
        chunks.push(all);
        if (bodies.length === PIPELINED) {
          clearTimeout(t);
          resolve();
        }
      });
      sock.resume();
    });
    sock.destroy();
    expect(bodies.map((b) => b.equals(want))).toEqual(Array(PIPELINED).fill(true));
  });
});
