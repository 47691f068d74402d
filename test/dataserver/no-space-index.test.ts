// The index's disk full, not the blocks': a data server whose LevelDB directory sits on a tiny
// tmpfs (filled up by someone else's file) refuses writes with 507 UGCFS_ERR_NO_SPACE while
// its block files still have room, keeps serving every acknowledged file, takes writes again
// once space is freed (no restart), and after a SIGKILL and restart still holds every file it
// acknowledged — the index's log may end in a torn record there, and recovery's scan of the
// block tails past the watermark is what keeps nothing acknowledged from being lost.
// Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped, not faked.
import { rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { SECRET_HEADERS } from '../helpers/proc.ts';

const bed = dataserverBed('ugcfs-nospace-index-');
const indexDir = join(bed.dir, 'ds', 'index');
const mounted = bed.tmpfs('ds/index', '1m');

const fidOf = (i: number) => encodeFid({ block: 1, key: BigInt(i), cookie: i });
const body = (i: number) => Buffer.alloc(100 + (i % 50), i % 256);

describe('index disk full', () => {
  it.skipIf(!mounted)('507 while full, writable again once freed, and every acknowledged file survives a restart', async () => {
    let ds = await bed.start('ds', ['--block-size', '64M']);
    expect((await fetch(`${ds.url}/blocks/1`, { method: 'POST', headers: { ...SECRET_HEADERS, 'content-type': 'application/json' }, body: '{}' })).status).toBe(201);
    const free = statfsSync(indexDir);
    writeFileSync(join(indexDir, 'ballast'), Buffer.alloc(free.bavail * free.bsize - 16 * 1024));

    const acked: number[] = [];
    let refused: { status: number; code: string } | undefined;
    for (let i = 1; i < 5000 && !refused; i++) {
      const r = await fetch(`${ds.url}/needles/${fidOf(i)}`, { method: 'PUT', headers: SECRET_HEADERS, body: body(i) });
      if (r.status === 201) acked.push(i);
      else refused = { status: r.status, code: ((await r.json()) as { error: { code: string } }).error.code };
    }
    expect(refused).toEqual({ status: 507, code: 'UGCFS_ERR_NO_SPACE' });
    expect(acked.length).toBeGreaterThan(10);
    for (const i of [acked[0]!, acked.at(-1)!]) expect(Buffer.from(await (await fetch(`${ds.url}/needles/${fidOf(i)}`, { headers: SECRET_HEADERS })).arrayBuffer())).toEqual(body(i));

    rmSync(join(indexDir, 'ballast'));
    for (let i = 10_001; i <= 10_005; i++) {
      expect((await fetch(`${ds.url}/needles/${fidOf(i)}`, { method: 'PUT', headers: SECRET_HEADERS, body: body(i) })).status).toBe(201);
      acked.push(i);
    }

    await ds.kill('SIGKILL');
    ds = await bed.start('ds', ['--block-size', '64M']);
    for (const i of acked) {
      const r = await fetch(`${ds.url}/needles/${fidOf(i)}`, { headers: SECRET_HEADERS });
      expect(r.status, `file ${i}`).toBe(200);
      expect(Buffer.from(await r.arrayBuffer())).toEqual(body(i));
    }
  }, 60_000);
});
