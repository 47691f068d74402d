// Reads the cluster client checks itself (x-ugcfs-verify: client): the data server skips its
// pass over the data and sends the CRC the data must have, derived from the record's stored
// one. Damage must still never reach a caller: the client sees the mismatch, asks the same
// server again with the server checking (which counts and logs the bad record), then goes on
// to the next replica.
import { closeSync, openSync, readdirSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crc32c } from '@node-rs/crc32';
import { decodeFid } from '../../src/wire/file-id.ts';
import { HEADERS } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ dataservers: 2, replicas: 2, racks: ['a', 'b'] });
});
afterAll(async () => {
  await c?.stop();
});

/** Overwrites one byte of `block`'s file on data server `i`; returns the byte that was there. */
function poke(i: number, block: number, at: number, value?: number): number {
  const dir = join(c.dir, c.dsIds[i]!, 'blocks');
  const name = readdirSync(dir).find((n) => n.startsWith(`${block}.`) && n.endsWith('.blk'))!;
  const fd = openSync(join(dir, name), 'r+');
  const was = Buffer.alloc(1);
  readSync(fd, was, 0, 1, at);
  writeSync(fd, Buffer.from([value ?? was[0]! ^ 0xa5]), 0, 1, at);
  closeSync(fd);
  return was[0]!;
}

async function get(i: number, fid: string, headers: Record<string, string> = {}) {
  const r = await fetch(`${c.dataservers[i]!.url}/needles/${fid}`, { headers: { 'x-ugcfs-secret': c.secret, ...headers } });
  return { status: r.status, crc: r.headers.get(HEADERS.crc), body: Buffer.from(await r.arrayBuffer()) };
}

async function reads(i: number) {
  const m = await scrapeMetrics(c.dataservers[i]!.url);
  const q = (status: string) => m.value('ugcfs_http_requests_total', { route: '/needles/:fid', method: 'GET', status });
  return { ok: q('200'), failed: q('500'), checksum: m.value('ugcfs_checksum_failures_total') };
}

describe('client-checked reads', () => {
  const data = randomBytes(4000);
  let fid = '';

  it('carry the same CRC as a server-checked read of an intact record', async () => {
    fid = (await c.client.write(data, { mime: 'image/jpeg' })).fid;
    for (const i of [0, 1]) {
      const server = await get(i, fid);
      const client = await get(i, fid, { [HEADERS.verify]: 'client' });
      expect(server.status).toBe(200);
      expect(client.status).toBe(200);
      expect(client.body.equals(data)).toBe(true);
      expect(Number(client.crc)).toBe(crc32c(data));
      expect(client.crc).toBe(server.crc);
    }
  });

  // The file is the first record of its block on both servers: it starts at offset 0.
  const AT = 2000;
  let original = 0;

  it('of a damaged record: the data server answers bytes that fail the CRC it sends; checked by the server, 500', async () => {
    original = poke(0, decodeFid(fid).block, AT);
    const client = await get(0, fid, { [HEADERS.verify]: 'client' });
    expect(client.status).toBe(200);
    expect(crc32c(client.body)).not.toBe(Number(client.crc));
    const server = await get(0, fid);
    expect(server.status).toBe(500);
    expect(JSON.parse(server.body.toString()).error.code).toBe('UGCFS_ERR_CHECKSUM');
  });

  it('the cluster client never returns damaged bytes: it re-asks with the server checking, then reads a good copy', async () => {
    // Both copies damaged: CHECKSUM, after one client-checked answer and one server-checked
    // refusal from each server (counted where the damage is).
    poke(1, decodeFid(fid).block, AT);
    const before = await Promise.all([reads(0), reads(1)]);
    await expect(c.client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_CHECKSUM' });
    const after = await Promise.all([reads(0), reads(1)]);
    for (const i of [0, 1]) {
      expect(after[i]!.ok - before[i]!.ok).toBe(1);
      expect(after[i]!.failed - before[i]!.failed).toBe(1);
      expect(after[i]!.checksum - before[i]!.checksum).toBe(1);
    }
    // One copy mended: whichever server the client asks first, it returns the intact bytes.
    poke(1, decodeFid(fid).block, AT, original);
    for (let n = 0; n < 5; n++) {
      const r = await c.client.read(fid);
      expect(r.data.equals(data)).toBe(true);
      expect(r.crc).toBe(crc32c(data));
    }
  });
});
