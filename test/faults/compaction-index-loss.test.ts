// The first way a power cut lost acknowledged files, reproduced on a real data server: the
// index as it was before a compaction (what survives when the switch batch never reached
// the disk) beside the block files as they are after it. Opening used to find its indexed
// generation missing, remove every other one, and leave the block empty. Now every
// acknowledged file reads back byte-exact and no block file is removed.
import { cpSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { payload, seededRandom } from './fault-kit.ts';

const SECRET = 'compaction-index-loss-secret-0123456789';
const bed = dataserverBed('ugcfs-compact-loss-', { secret: SECRET });

describe('a power cut that loses compaction\'s switch', () => {
  it('loses no acknowledged file and removes no block file', async () => {
    const ds = await bed.start('ds');
    const dir = join(bed.dir, 'ds');
    const block = 4;
    await callJson(ds.url + DS_ROUTES.block.replace(':id', String(block)), { method: 'POST', body: {}, secret: SECRET });
    const rnd = seededRandom(20);
    const files = new Map<string, Buffer>();
    for (let key = 1n; key <= 14n; key++) {
      const fid = encodeFid({ block, key, cookie: 0x5eed + Number(key) });
      const data = payload(rnd, 2000 + Number(key) * 300);
      expect((await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), { method: 'PUT', body: data, secret: SECRET })).status).toBe(201);
      files.set(fid, data);
    }
    const deleted = [...files.keys()].filter((_, i) => i % 4 === 1);
    for (const fid of deleted) {
      expect((await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), { method: 'DELETE', secret: SECRET })).status).toBe(204);
      files.delete(fid);
    }
    await ds.kill('SIGTERM');
    cpSync(join(dir, 'index'), join(bed.dir, 'index-before'), { recursive: true });

    const again = await bed.start('ds');
    const c = await callRaw(again.url + DS_ROUTES.blockCompact.replace(':id', String(block)), { method: 'POST', secret: SECRET });
    expect(c.status).toBe(200);
    await again.kill('SIGKILL');
    const after = readdirSync(join(dir, 'blocks'));
    expect(after).toEqual([`${block}.1.blk`]);
    rmSync(join(dir, 'index'), { recursive: true });
    renameSync(join(bed.dir, 'index-before'), join(dir, 'index'));

    const third = await bed.start('ds');
    for (const [fid, data] of files) {
      const r = await callRaw(third.url + DS_ROUTES.needle.replace(':fid', fid), { secret: SECRET });
      expect(r.status, fid).toBe(200);
      expect(r.body.equals(data), fid).toBe(true);
    }
    for (const fid of deleted) {
      expect((await callRaw(third.url + DS_ROUTES.needle.replace(':fid', fid), { secret: SECRET })).status).toBe(404);
    }
    expect(readdirSync(join(dir, 'blocks'))).toEqual(after);
    const scrub = await callJson<{ bad: unknown[] }>(third.url + DS_ROUTES.blockScrub.replace(':id', String(block)), { method: 'POST', secret: SECRET });
    expect(scrub.bad).toEqual([]);
  });
});
