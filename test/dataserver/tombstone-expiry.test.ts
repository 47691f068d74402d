// Compaction keeps a tombstone for --tombstone-keep-hours after its delete, then drops it —
// by the cluster clock (dataserver/cluster-clock.ts): the name server's time from heartbeat
// answers and the server's own, whichever is earlier, and nothing expires before a name
// server has answered. Read from the block's raw bytes after compaction, on real data
// servers beside a real name server.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES } from '../../src/wire/protocol.ts';
import { decodeNeedle, isTombstone } from '../../dataserver/needle.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { TEST_SECRET, start, waitFor, type Proc } from '../helpers/proc.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-tomb-', { secret: SECRET });
const DAY_MS = 24 * 3_600_000;
let ns: Proc;

beforeAll(async () => {
  ns = await start(['nameserver', '--data', join(bed.dir, 'ns'), '--port', '0', '--heartbeat-ms', '100'], { env: { UGCFS_CLUSTER_SECRET: SECRET } });
});
afterAll(async () => {
  await ns?.kill('SIGKILL');
});

/** A data server that beats to the test's name server. */
const startDs = (name: string, extra: string[]) => bed.start(name, ['--nameserver', ns.url, '--heartbeat-ms', '100', ...extra]);

/** Until the server has had a heartbeat answer, so it knows the name server's time. */
async function heardNameserver(ds: Proc): Promise<void> {
  await waitFor(`${ds.url} to hear the name server`, async () => {
    const h = (await (await fetch(`${ds.url}/healthz`)).json()) as { nameserverTime?: boolean };
    return h.nameserverTime === true;
  }, 20_000, 50);
}

const fid = (key: bigint) => encodeFid({ block: 3, key, cookie: 77 });

async function putKeys(ds: Proc, keys: bigint[]): Promise<void> {
  await callJson(ds.url + DS_ROUTES.block.replace(':id', '3'), { method: 'POST', body: {}, secret: SECRET });
  for (const k of keys) {
    const r = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid(k)), { method: 'PUT', body: Buffer.alloc(3000, Number(k)), secret: SECRET });
    expect(r.status).toBe(201);
  }
}

async function del(ds: Proc, key: bigint): Promise<void> {
  expect((await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid(key)), { method: 'DELETE', secret: SECRET })).status).toBe(204);
}

async function compact(ds: Proc): Promise<void> {
  expect((await callRaw(ds.url + DS_ROUTES.blockCompact.replace(':id', '3'), { method: 'POST', secret: SECRET })).status).toBe(200);
}

/** key -> 'live' | 'deleted' for every record in the block file, in file order (last wins). */
async function recordsOf(ds: Proc, block: number): Promise<Record<string, string>> {
  const raw = await callRaw(`${ds.url}${DS_ROUTES.blockData.replace(':id', String(block))}?from=0`, { secret: SECRET });
  expect(raw.status).toBe(200);
  const out = new Map<bigint, string>();
  for (let at = 0; at < raw.body.length; ) {
    const n = decodeNeedle(raw.body, at);
    if (typeof n === 'string') throw new Error(`record at ${at}: ${n}`);
    out.set(n.key, isTombstone(n.flags) ? 'deleted' : 'live');
    at += n.length;
  }
  return Object.fromEntries(out);
}

describe('tombstone expiry at compaction', () => {
  it('drops tombstones older than --tombstone-keep-hours and keeps younger ones; the default keeps both', async () => {
    const expiring = await startDs('expiring', ['--tombstone-keep-hours', '0.0002']); // 0.72 s
    const keeping = await startDs('keeping', []);
    for (const ds of [expiring, keeping]) {
      await heardNameserver(ds);
      await putKeys(ds, [1n, 2n, 3n]);
      await del(ds, 1n);
    }
    await new Promise((r) => setTimeout(r, 1500));
    for (const ds of [expiring, keeping]) {
      await del(ds, 2n);
      await compact(ds);
    }
    // key 1 was deleted 1.5 s before the compaction, key 2 just before it
    expect(await recordsOf(expiring, 3)).toEqual({ 2: 'deleted', 3: 'live' });
    expect(await recordsOf(keeping, 3)).toEqual({ 1: 'deleted', 2: 'deleted', 3: 'live' });
    // the live file still reads back after compaction
    const got = await callRaw(expiring.url + DS_ROUTES.needle.replace(':fid', fid(3n)), { secret: SECRET });
    expect(got.status).toBe(200);
    expect(got.body.equals(Buffer.alloc(3000, 3))).toBe(true);
  });

  it('a server whose clock jumps a day ahead keeps a fresh tombstone (12 h keep time): expiry follows the name server\'s time', async () => {
    const ds = await startDs('ahead', ['--tombstone-keep-hours', '12']);
    await heardNameserver(ds);
    await putKeys(ds, [1n, 2n]);
    await del(ds, 1n);
    await ds.kill('SIGTERM');
    // The same data, the machine's clock now a day ahead: by its own clock the tombstone is
    // 24 h old, twice the keep time; by the name server's it is seconds old.
    const ahead = await startDs('ahead', ['--tombstone-keep-hours', '12', `--test-clock-offset-ms=${DAY_MS}`]);
    await heardNameserver(ahead);
    await compact(ahead);
    expect(await recordsOf(ahead, 3)).toEqual({ 1: 'deleted', 2: 'live' });
  });

  it('with no name server ever answering, nothing expires', async () => {
    // the bed's default name server address is a closed port
    const alone = await bed.start('alone', ['--tombstone-keep-hours', '0.0002']);
    await putKeys(alone, [1n, 2n]);
    await del(alone, 1n);
    await new Promise((r) => setTimeout(r, 1500));
    await compact(alone);
    expect(await recordsOf(alone, 3)).toEqual({ 1: 'deleted', 2: 'live' });
    const h = (await (await fetch(`${alone.url}/healthz`)).json()) as { nameserverTime?: boolean };
    expect(h.nameserverTime).toBe(false);
  });
});
