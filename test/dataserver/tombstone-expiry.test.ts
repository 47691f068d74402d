// Compaction keeps a tombstone for --tombstone-keep-hours after its delete, then drops it.
// Read from the block's raw bytes after compaction, on real data servers.
import { describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/file-id.ts';
import { callJson, callRaw } from '../../src/http-client.ts';
import { DS_ROUTES } from '../../src/protocol.ts';
import { decodeNeedle, isTombstone } from '../../dataserver/needle.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import type { Proc } from '../helpers/proc.ts';

const SECRET = 'tombstone-secret';
const bed = dataserverBed('ugcfs-tomb-', { secret: SECRET });
const startDs = bed.start;

/** key -> 'live' | 'deleted' for every record in the block file, in file order (last wins). */
async function recordsOf(ds: Proc, block: number): Promise<Map<bigint, string>> {
  const raw = await callRaw(`${ds.url}${DS_ROUTES.blockData.replace(':id', String(block))}?from=0`, { secret: SECRET });
  expect(raw.status).toBe(200);
  const out = new Map<bigint, string>();
  for (let at = 0; at < raw.body.length; ) {
    const n = decodeNeedle(raw.body, at);
    if (typeof n === 'string') throw new Error(`record at ${at}: ${n}`);
    out.set(n.key, isTombstone(n.flags) ? 'deleted' : 'live');
    at += n.length;
  }
  return out;
}

describe('tombstone expiry at compaction', () => {
  it('drops tombstones older than --tombstone-keep-hours and keeps younger ones; the default keeps both', async () => {
    const expiring = await startDs('expiring', ['--tombstone-keep-hours', '0.0002']); // 0.72 s
    const keeping = await startDs('keeping', []);
    for (const ds of [expiring, keeping]) {
      await callJson(ds.url + DS_ROUTES.block.replace(':id', '3'), { method: 'POST', body: {}, secret: SECRET });
      const fid = (key: bigint) => encodeFid({ block: 3, key, cookie: 77 });
      for (let k = 1n; k <= 3n; k++) {
        const r = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid(k)), { method: 'PUT', body: Buffer.alloc(3000, Number(k)), secret: SECRET });
        expect(r.status).toBe(201);
      }
      await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid(1n)), { method: 'DELETE', secret: SECRET });
    }
    await new Promise((r) => setTimeout(r, 1500));
    for (const ds of [expiring, keeping]) {
      await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', encodeFid({ block: 3, key: 2n, cookie: 77 })), { method: 'DELETE', secret: SECRET });
      const c = await callRaw(ds.url + DS_ROUTES.blockCompact.replace(':id', '3'), { method: 'POST', secret: SECRET });
      expect(c.status).toBe(200);
    }
    // key 1 was deleted 1.5 s before the compaction, key 2 just before it
    expect(Object.fromEntries(await recordsOf(expiring, 3))).toEqual({ 2: 'deleted', 3: 'live' });
    expect(Object.fromEntries(await recordsOf(keeping, 3))).toEqual({ 1: 'deleted', 2: 'deleted', 3: 'live' });
    // the live file still reads back after compaction
    const got = await callRaw(expiring.url + DS_ROUTES.needle.replace(':fid', encodeFid({ block: 3, key: 3n, cookie: 77 })), { secret: SECRET });
    expect(got.status).toBe(200);
    expect(got.body.equals(Buffer.alloc(3000, 3))).toBe(true);
  });
});
