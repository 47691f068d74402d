// verify --repair when no other server can take a copy (2 data servers, 2 replicas): the
// damaged copy is re-copied in place from the good one, while a background reader keeps
// reading every file without an error.
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { BlockLocation, Operation } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { startReader, type BackgroundReader } from './background-reader.ts';

let c: Cluster;
let reader: BackgroundReader;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startCluster({ dataservers: 2, racks: ['a', 'b'], replicas: 2, blockSize: 32 * 1024 });
  for (let i = 0; i < 40; i++) {
    const data = randomBytes(1500 + i * 37);
    files.set((await c.client.write(data)).fid, data);
  }
  reader = startReader(c, files);
});
afterAll(async () => {
  await reader?.stop();
  await c?.stop();
});

describe('verify --repair in place', () => {
  it('re-copies a damaged copy from the good one when no spare server exists', async () => {
    const fid = [...files.keys()][5]!;
    const block = decodeFid(fid).block;
    const victim = 'ds-2';
    const dir = join(c.dir, victim, 'blocks');
    const name = readdirSync(dir).find((n) => n.startsWith(`${block}.`) && n.endsWith('.blk'))!;
    const path = join(dir, name);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(24, 0x5a), 0, 24, Math.floor(statSync(path).size / 3));
    closeSync(fd);

    const mended = await c.cli(['verify', '--repair', '--json']);
    expect(mended.code, mended.stderr).toBe(0);
    const op = JSON.parse(mended.stdout) as Operation;
    const damage = op.details!.damage as Array<{ block: number; ds: string; repaired?: boolean }>;
    expect(damage.find((d) => d.block === block && d.ds === victim)?.repaired).toBe(true);
    expect(op.details!.remaining).toBe(0);

    const again = await c.cli(['verify']);
    expect(again.code, again.stdout).toBe(0);
    const res = await fetch(`${c.nameserver.url}/blocks/${block}`, { headers: { 'x-ugcfs-secret': c.secret } });
    expect(((await res.json()) as BlockLocation).replicas.map((r) => r.id).sort()).toEqual(['ds-1', 'ds-2']);
    // the re-copied replica serves the file itself
    const direct = await fetch(`${c.dataservers[1]!.url}/needles/${fid}`, { headers: { 'x-ugcfs-secret': c.secret } });
    expect(direct.status).toBe(200);
    expect(Buffer.from(await direct.arrayBuffer()).equals(files.get(fid)!)).toBe(true);
    expect(reader.errors).toEqual([]);
  });
});
