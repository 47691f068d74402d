// A full disk: a real data server on a tiny tmpfs answers 507 UGCFS_ERR_NO_SPACE, and every
// file acknowledged before stays whole and readable, with no partial record left behind;
// once space is freed it takes writes again without a restart.
// Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped, not faked.
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import type { BlockReport } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { SECRET_HEADERS } from '../helpers/proc.ts';

const bed = dataserverBed('ugcfs-nospace-');
const mnt = join(bed.dir, 'mnt');
const mounted = bed.tmpfs('mnt', '3m');

describe('disk full', () => {
  it.skipIf(!mounted)('answers 507 UGCFS_ERR_NO_SPACE and damages nothing', async () => {
    const ds = await bed.start('mnt/ds', ['--block-size', '64M']);
    const url = ds.url;
    expect((await fetch(`${url}/blocks/1`, { method: 'POST', headers: { ...SECRET_HEADERS, 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    // Someone else's file on the same disk, removed later to free space.
    writeFileSync(join(mnt, 'ballast'), Buffer.alloc(1024 * 1024));
    const body = (i: number) => Buffer.alloc(150 * 1024, i);
    const stored: string[] = [];
    let refused: { status: number; code: string } | undefined;
    for (let i = 1; i < 100 && !refused; i++) {
      const fid = encodeFid({ block: 1, key: BigInt(i), cookie: i });
      const r = await fetch(`${url}/needles/${fid}`, { method: 'PUT', headers: SECRET_HEADERS, body: body(i) });
      if (r.status === 201) stored.push(fid);
      else refused = { status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code };
    }
    expect(refused).toEqual({ status: 507, code: 'UGCFS_ERR_NO_SPACE' });
    expect(stored.length).toBeGreaterThan(3);
    for (const [i, fid] of stored.entries()) {
      const r = await fetch(`${url}/needles/${fid}`, { headers: SECRET_HEADERS });
      expect(r.status).toBe(200);
      expect(Buffer.compare(Buffer.from(await r.arrayBuffer()), body(i + 1))).toBe(0);
    }
    // The file holds exactly the indexed records: the failed append was cut back off.
    const report = ((await (await fetch(`${url}/blocks/1`, { headers: SECRET_HEADERS })).json()) as BlockReport);
    expect(statSync(join(mnt, 'ds', 'blocks', '1.0.blk')).size).toBe(report.size);
    expect(report.liveCount).toBe(stored.length);

    // Space freed: the same server takes writes again, no restart needed.
    rmSync(join(mnt, 'ballast'));
    const fid = encodeFid({ block: 1, key: 1000n, cookie: 1000 });
    expect((await fetch(`${url}/needles/${fid}`, { method: 'PUT', headers: SECRET_HEADERS, body: body(7) })).status).toBe(201);
    expect(Buffer.compare(Buffer.from(await (await fetch(`${url}/needles/${fid}`, { headers: SECRET_HEADERS })).arrayBuffer()), body(7))).toBe(0);
  });
});
