// Disk full, for real: the third data server keeps its blocks and index on an 8 MiB tmpfs,
// which the test then fills with a ballast file (another tenant of the disk). Writes must
// move to the other servers (or fail with 507 UGCFS_ERR_NO_SPACE), reads go on, every
// stored record still passes its CRC, and writes land there again once space is freed.
// Mounting needs root; without it the suite is skipped and says why.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { encodeFid, MAX_KEY } from '../../src/wire/file-id.ts';
import { DS_ROUTES, type BlockReport, type ScrubResult } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';
import { outcome, payload, seededRandom, sha, faultSeed } from './fault-kit.ts';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const canMount = isRoot && process.platform === 'linux';
if (!canMount) console.warn('disk-full suite skipped: mounting a small tmpfs needs root on Linux');

function fillDisk(path: string): number {
  // Fill byte by byte down to the last page, so the data server has nothing left at all.
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(64 * 1024, 0x5a);
  let written = 0;
  try {
    for (;;) {
      let n: number;
      try {
        n = writeSync(fd, chunk);
      } catch {
        break;
      }
      if (n <= 0) break;
      written += n;
      if (n < chunk.length) {
        try {
          for (;;) {
            const m = writeSync(fd, chunk, 0, 512);
            if (m <= 0) break;
            written += m;
          }
        } catch {
          // full
        }
        break;
      }
    }
  } finally {
    closeSync(fd);
  }
  return written;
}

describe.skipIf(!canMount)('disk full on one data server (8 MiB tmpfs)', () => {
  let cluster: Cluster;
  const mounts: string[] = [];
  let ballast = '';
  const seed = faultSeed();
  const rnd = seededRandom(seed);
  const stored = new Map<string, { data: Buffer; replicas: string[] }>();
  let ds3 = '';

  beforeAll(async () => {
    console.log(`disk-full suite seed=${seed}`);
    // Every server on a small disk, so placement by free space still picks the 8 MiB one
    // often (on a big disk beside it, it would almost never be chosen). Small blocks roll
    // over often, so fresh placements keep happening during the test.
    cluster = await startCluster({ dataservers: 0, replicas: 2, racks: [''], blockSize: 256 * 1024 });
    for (const [name, size] of [['ds-1', '24m'], ['ds-2', '24m'], ['ds-3', '8m']] as const) {
      const m = join(cluster.dir, name);
      mkdirSync(m, { recursive: true });
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', m]);
      mounts.push(m);
    }
    ballast = join(mounts[2]!, 'ballast.bin');
    for (let i = 0; i < 3; i++) await cluster.addDataserver();
    await cluster.waitForAlive();
    ds3 = cluster.dataservers[2]!.url;
  }, 90_000);

  afterAll(async () => {
    if (!cluster) return;
    await Promise.all(cluster.dataservers.map((p) => p.kill('SIGKILL')));
    for (const m of mounts) {
      try {
        execFileSync('umount', ['-l', m]);
      } catch {
        // never mounted
      }
    }
    await cluster.stop();
  });

  async function scrubAll(url: string): Promise<{ records: number; bad: number }> {
    const blocks = await callJson<BlockReport[]>(url + DS_ROUTES.blocks, { secret: cluster.secret });
    let records = 0;
    let bad = 0;
    for (const b of blocks) {
      const r = await callJson<ScrubResult>(url + DS_ROUTES.blockScrub.replace(':id', String(b.id)), { method: 'POST', secret: cluster.secret, timeoutMs: 30_000 });
      records += r.records;
      bad += r.bad.length;
    }
    return { records, bad };
  }

  // One fid per assign, so writes spread over the open blocks (an assign batch lands in one block).
  let spreading: ClusterClient | undefined;
  const spreadClient = () => (spreading ??= new ClusterClient({ nameserver: cluster.nameserver.url, secret: cluster.secret, assignBatch: 1 }));

  it('files stored before the disk fills keep reading back byte-exact from the full server', async () => {
    const onDs3 = () => [...stored].filter(([, v]) => v.replicas.includes('ds-3'));
    const spread = spreadClient();
    for (let i = 0; i < 150 && (i < 20 || onDs3().length < 4); i++) {
      const data = payload(rnd, 20_000 + Math.floor(rnd() * 20_000));
      const w = await spread.write(data);
      stored.set(w.fid, { data, replicas: w.replicas.map((r) => r.id) });
    }
    expect(onDs3().length).toBeGreaterThanOrEqual(4);

    const filled = fillDisk(ballast);
    expect(filled).toBeGreaterThan(0);
    console.log(`disk-full: ballast of ${filled} bytes fills the tmpfs`);

    for (const [fid, v] of onDs3()) {
      const r = await callRaw(`${ds3}/needles/${fid}`, { secret: cluster.secret });
      expect(r.status, fid).toBe(200);
      expect(sha(r.body)).toBe(sha(v.data));
    }
  });

  it('a write sent straight to the full server is refused with 507 UGCFS_ERR_NO_SPACE and nothing is stored', async () => {
    // Its open blocks may meanwhile have been made read-only (409); a block created just
    // for this write (an id the name server never hands out) must then meet the full disk.
    const blocks = await callJson<BlockReport[]>(ds3 + DS_ROUTES.blocks, { secret: cluster.secret });
    const targets = blocks.filter((b) => !b.sealed && !b.readonly).map((b) => b.id);
    const scratch = 0xfffffff0 - Math.floor(rnd() * 1000);
    const made = await callRaw(ds3 + DS_ROUTES.block.replace(':id', String(scratch)), { method: 'POST', secret: cluster.secret, body: { replicas: [] } });
    const answers: string[] = [];
    if (made.status === 201 || made.status === 200) targets.push(scratch);
    else answers.push(`create ${made.status} ${JSON.parse(made.body.toString('utf8')).error.code}`);
    const fids: string[] = [];
    for (const block of targets) {
      const fid = encodeFid({ block, key: MAX_KEY - BigInt(Math.floor(rnd() * 1e6)), cookie: 12345 });
      fids.push(fid);
      const r = await callRaw(`${ds3}/needles/${fid}`, { method: 'PUT', secret: cluster.secret, body: payload(rnd, 100_000) });
      answers.push(`${r.status} ${r.status >= 400 ? JSON.parse(r.body.toString('utf8')).error.code : ''}`);
    }
    console.log(`disk-full: direct writes to the full server answered ${answers.join(', ')}`);
    expect(answers.some((a) => a.startsWith('507 UGCFS_ERR_NO_SPACE') || a === 'create 507 UGCFS_ERR_NO_SPACE'), answers.join(', ')).toBe(true);
    for (const a of answers) expect(['507 UGCFS_ERR_NO_SPACE', '409 UGCFS_ERR_BLOCK_READONLY', 'create 507 UGCFS_ERR_NO_SPACE']).toContain(a);
    for (const fid of fids) {
      const after = await callRaw(`${ds3}/needles/${fid}`, { method: 'HEAD', secret: cluster.secret });
      expect(after.status).toBe(404);
    }
    if (targets.includes(scratch)) await callRaw(ds3 + DS_ROUTES.block.replace(':id', String(scratch)), { method: 'DELETE', secret: cluster.secret });
  });

  it('writes through the client move to the servers with space; none is lost or half-stored', async () => {
    const fresh: string[] = [];
    for (let i = 0; i < 20; i++) {
      const data = payload(rnd, 20_000 + Math.floor(rnd() * 20_000));
      const r = await outcome(() => cluster.client.write(data), 60_000, 'write to a cluster with a full server');
      // three servers, one full: a block on the two others always exists or can be made
      expect(r.ok, r.ok ? '' : `${r.code}: ${r.message}`).toBe(true);
      if (r.ok) {
        stored.set(r.value.fid, { data, replicas: r.value.replicas.map((x) => x.id) });
        fresh.push(r.value.fid);
        expect(r.value.replicas.map((x) => x.id)).not.toContain('ds-3');
      }
    }
    for (const fid of fresh) {
      const got = await cluster.client.read(fid);
      expect(sha(got.data)).toBe(sha(stored.get(fid)!.data));
    }
  });

  it('nothing stored on the full server is damaged: every record passes its CRC', async () => {
    const s = await scrubAll(ds3);
    expect(s.records).toBeGreaterThan(0);
    expect(s.bad).toBe(0);
  });

  it('once space is freed the server takes writes again and everything reads back', async () => {
    rmSync(ballast);
    // a direct write to one of its blocks succeeds again (blocks the name server gave up on
    // stay read-only; ask for a fresh one if none is open)
    await waitFor('ds-3 reporting free space', async () => {
      const s = await cluster.status();
      return (s.dataservers.find((d) => d.id === 'ds-3')?.freeBytes ?? 0) > 4 * 1024 * 1024;
    }, 20_000);
    let landed = 0;
    for (let i = 0; i < 40 && landed < 2; i++) {
      const data = payload(rnd, 20_000);
      const w = await spreadClient().write(data);
      stored.set(w.fid, { data, replicas: w.replicas.map((r) => r.id) });
      if (w.replicas.some((r) => r.id === 'ds-3')) landed++;
    }
    expect(landed, 'writes land on ds-3 again after space was freed').toBeGreaterThanOrEqual(1);
    for (const [fid, v] of stored) {
      const got = await cluster.client.read(fid);
      expect(sha(got.data), fid).toBe(sha(v.data));
    }
    const s = await scrubAll(ds3);
    expect(s.bad).toBe(0);
    const refusals = cluster.dataservers[2]!.lines.filter((l) => l.includes('UGCFS_ERR_NO_SPACE')).length;
    console.log(`disk-full: ${refusals} writes refused with NO_SPACE, ${stored.size} files checked byte-exact, ${s.records} records scrubbed on ds-3, bytes lost: 0`);
  });
});
