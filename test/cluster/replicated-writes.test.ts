// 1 name server + 3 data servers on racks a/b/c, replicas 2: files written through the
// cluster client read back byte-exact, every file sits on 2 live servers on distinct racks,
// and the admin CLI speaks the JSON shapes of docs/INTERFACE.md.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { waitFor } from '../helpers/proc.ts';

let c: Cluster;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 1024 * 1024 });
});
afterAll(async () => {
  await c?.stop();
});

async function pool<T>(items: T[], width: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

describe('replicated writes', () => {
  it('writes 1,000 files and reads every one back byte-exact', async () => {
    const sizes = Array.from({ length: 1000 }, (_, i) => 1 + ((i * 7919) % 12_000));
    await pool(sizes, 16, async (size) => {
      const data = randomBytes(size);
      const w = await c.client.write(data, { mime: 'application/octet-stream', owner: 'seller-1' });
      expect(w.size).toBe(size);
      expect(w.replicas).toHaveLength(2);
      files.set(w.fid, data);
    });
    expect(files.size).toBe(1000);
    await pool([...files.keys()], 16, async (fid) => {
      const r = await c.client.read(fid);
      expect(r.data.equals(files.get(fid)!)).toBe(true);
      expect(r.owner).toBe('seller-1');
    });
    // blocks filled up and new ones were opened on every server
    const s = await c.status();
    expect(s.blocks).toBeGreaterThan(3);
    expect(s.underReplicatedBlocks).toBe(0);
    for (const d of s.dataservers) expect(d.blocks).toBeGreaterThan(0);
  });

  it('keeps every file on 2 live servers on distinct racks', async () => {
    const s = await c.status();
    const rack = new Map(s.dataservers.map((d) => [d.id, d.rack]));
    const sample = [...files.keys()].filter((_, i) => i % 25 === 0);
    for (const fid of sample) {
      const st = await c.client.stat(fid);
      expect(st.replicas).toHaveLength(2);
      expect(new Set(st.replicas).size).toBe(2);
      expect(new Set(st.replicas.map((id) => rack.get(id))).size).toBe(2);
      expect(st.size).toBe(files.get(fid)!.length);
    }
  });

  it('spreads reads of one block over its replicas (hashring by fid)', async () => {
    // All files of one block share a primary; reading them must not all hit it.
    const byBlock = new Map<number, string[]>();
    for (const fid of files.keys()) {
      const b = decodeFid(fid).block;
      byBlock.set(b, [...(byBlock.get(b) ?? []), fid]);
    }
    const [block, fids] = [...byBlock].sort((a, b) => b[1].length - a[1].length)[0]!;
    expect(fids.length).toBeGreaterThan(40);
    const loc = await c.client.locate(block, true);
    expect(loc.replicas).toHaveLength(2);
    const before = await readCounts();
    for (const fid of fids) await c.client.read(fid);
    const after = await readCounts();
    const served = loc.replicas.map((r) => after.get(r.id)! - before.get(r.id)!);
    expect(served[0]! + served[1]!).toBe(fids.length);
    for (const n of served) expect(n).toBeGreaterThan(fids.length * 0.2);
  });

  it('answers a wrong cookie and a never-allocated block like a missing file', async () => {
    const fid = [...files.keys()][0]!;
    const raw = Buffer.from(fid.slice(1), 'base64url');
    raw.writeUInt32BE((raw.readUInt32BE(11) + 1) >>> 0, 11);
    await expect(c.client.read('1' + raw.toString('base64url'))).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    raw.writeUInt32BE(999_999, 0);
    await expect(c.client.read('1' + raw.toString('base64url'))).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    await expect(c.client.read('not-a-fid')).rejects.toMatchObject({ code: 'UGCFS_ERR_BAD_FID' });
  });

  it('deletes reach every replica', async () => {
    const [fid] = [...files.keys()].slice(-1);
    const st = await c.client.stat(fid!);
    await c.client.delete(fid!);
    files.delete(fid!);
    await expect(c.client.read(fid!)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    await expect(c.client.stat(fid!)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    await expect(c.client.delete(fid!)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    expect(st.replicas).toHaveLength(2);
  });
});

async function readCounts(): Promise<Map<string, number>> {
  const s = await c.status();
  const out = new Map<string, number>();
  for (const d of s.dataservers) {
    out.set(d.id, await metric(d.url, 'ugcfs_needle_reads_total'));
  }
  return out;
}

describe('delete feed', () => {
  it('records every delete, from the client and from `ugcfs rm`, for origins to poll', async () => {
    const start = await c.client.deletesSince();
    const seen: string[] = [];
    const stop = c.client.watchDeletes({ onDelete: (fids) => void seen.push(...fids), intervalMs: 100 });
    try {
      const a = await c.client.write(randomBytes(700));
      const b = await c.client.write(randomBytes(800));
      await c.client.delete(a.fid);
      const rm = await c.cli(['rm', b.fid]);
      expect(rm.code).toBe(0);
      const page = await c.client.deletesSince(start.seq);
      expect(page.complete).toBe(true);
      expect(page.deletes.map((d) => d.fid)).toEqual([a.fid, b.fid]);
      expect(page.seq).toBe(start.seq + 2);
      await waitFor('watcher saw both deletes', () => seen.includes(a.fid) && seen.includes(b.fid), 10_000);
      // a cursor from the future (e.g. a wiped name server) is a gap: purge everything
      expect((await c.client.deletesSince(page.seq + 1000)).complete).toBe(false);
      const bad = await fetch(`${c.nameserver.url}/deletes?after=-1`, { headers: { 'x-ugcfs-secret': c.secret } });
      expect(bad.status).toBe(400);
      expect((await fetch(`${c.nameserver.url}/deletes`)).status).toBe(401);
    } finally {
      stop();
    }
  });
});

describe('admin CLI', () => {
  it('put, stat, get, rm and status with the docs/INTERFACE.md JSON shapes', async () => {
    const src = join(c.dir, 'upload.png');
    const bytes = randomBytes(5000);
    writeFileSync(src, bytes);
    const put = await c.cli(['put', src, '--json']);
    expect(put.code).toBe(0);
    const line = JSON.parse(put.stdout.trim()) as Record<string, unknown>;
    expect(Object.keys(line).sort()).toEqual(['fid', 'file', 'mime', 'size', 'url']);
    expect(line.size).toBe(5000);
    expect(line.file).toBe(src);
    // the type comes from the bytes: random bytes named .png are not an image
    expect(line.mime).toBe('application/octet-stream');
    const fid = line.fid as string;
    expect(line.url).toMatch(new RegExp(`/${fid}$`));

    const stat = await c.cli(['stat', fid, '--json']);
    expect(stat.code).toBe(0);
    const st = JSON.parse(stat.stdout) as Record<string, unknown>;
    expect(Object.keys(st).sort()).toEqual(['block', 'fid', 'mime', 'replicas', 'size']);
    expect(st).toMatchObject({ fid, size: 5000, mime: 'application/octet-stream' });
    expect(st.replicas).toHaveLength(2);

    const out = join(c.dir, 'download.bin');
    const get = await c.cli(['get', fid, '-o', out]);
    expect(get.code).toBe(0);
    expect(readFileSync(out).equals(bytes)).toBe(true);

    const status = await c.cli(['status', '--json']);
    expect(status.code).toBe(0);
    const s = JSON.parse(status.stdout) as { dataservers: Record<string, unknown>[]; underReplicatedBlocks: number };
    expect(s.underReplicatedBlocks).toBe(0);
    expect(s.dataservers).toHaveLength(3);
    for (const d of s.dataservers) {
      for (const k of ['id', 'url', 'rack', 'alive', 'blocks', 'usedBytes', 'freeBytes']) expect(d).toHaveProperty(k);
      expect(d.alive).toBe(true);
    }
    const human = await c.cli(['status']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('ds-1');
    expect(human.stdout).toContain('under-replicated blocks: 0');

    const rm = await c.cli(['rm', fid]);
    expect(rm.code).toBe(0);
    const gone = await c.cli(['get', fid]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('UGCFS_ERR_NOT_FOUND');
    expect(gone.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('put stores every readable file, reports the unreadable one, and exits 1', async () => {
    const a = join(c.dir, 'a.jpg');
    const b = join(c.dir, 'b.txt');
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#c33' } }).jpeg().toBuffer();
    writeFileSync(a, jpeg);
    writeFileSync(b, 'hello');
    const r = await c.cli(['put', a, join(c.dir, 'missing.jpg'), b, '--json']);
    expect(r.code).toBe(1);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { fid: string; size: number });
    expect(lines.map((l) => l.size)).toEqual([jpeg.length, 5]);
    expect(r.stderr).toContain('missing.jpg');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect((await c.client.read(lines[1]!.fid)).data.toString()).toBe('hello');
    expect((await c.client.read(lines[0]!.fid)).mime).toBe('image/jpeg');
  });

  it('exits 2 on bad usage and 1 when the name server is unreachable', async () => {
    expect((await c.cli(['stat'])).code).toBe(2);
    expect((await c.cli(['stat', 'nonsense'])).code).toBe(2);
    expect((await c.cli(['get', '1AAAA'])).code).toBe(2);
    expect((await c.cli(['put'])).code).toBe(2);
    expect((await c.cli(['status', '--bogus'])).code).toBe(2);
    const down = await c.cli(['status'], { env: { UGCFS_NAMESERVER: 'http://127.0.0.1:1' } });
    expect(down.code).toBe(1);
    expect(down.stderr.trim().split('\n')).toHaveLength(1);
    const wrongSecret = await c.cli(['status', '--json'], { env: { UGCFS_CLUSTER_SECRET: randomBytes(24).toString('hex') } });
    expect(wrongSecret.code).toBe(1);
    expect(wrongSecret.stderr).toContain('UGCFS_ERR_UNAUTHORIZED');
    // a guessable secret is bad usage before anything is sent
    const shortSecret = await c.cli(['status', '--json'], { env: { UGCFS_CLUSTER_SECRET: 'wrong' } });
    expect(shortSecret.code).toBe(2);
    expect(shortSecret.stderr).toContain('--cluster-secret');
    expect(shortSecret.stderr).toContain('shorter than 32 characters');
  });
});
