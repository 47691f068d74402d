// Drain, compact and verify on a real cluster while a background reader reads every live
// file: a drained server can be SIGKILLed without anything becoming unreadable or
// under-replicated; deleting two thirds of the files and compacting gives the bytes back;
// a corrupted replica is found by verify, mended by verify --repair, and a second verify is
// clean. Bad usage exits 2 (or 1 for unknown ids / an unreachable name server) with one line.
import { randomBytes } from 'node:crypto';
import { openSync, readdirSync, statSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { BlockLocation, Operation } from '../../src/wire/protocol.ts';
import { nsGet, startCluster, writeRandomFiles, type Cluster } from '../helpers/cluster.ts';
import { startReader, type BackgroundReader } from './background-reader.ts';

let c: Cluster;
let reader: BackgroundReader;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startCluster({ dataservers: 4, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 32 * 1024 });
  await writeRandomFiles(c, files, { count: 150, batch: 6, spread: 613 });
  reader = startReader(c, files);
});
afterAll(async () => {
  await reader?.stop();
  await c?.stop();
});

function oneLine(s: string): void {
  expect(s.trim().split('\n')).toHaveLength(1);
}

describe('bad usage', () => {
  it('exits 2 for bad flags and arguments, 1 for unknown ids and an unreachable name server', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['drain'], 2, /exactly one data server id/],
      [['drain', 'no-such-ds'], 1, /UGCFS_ERR_DATASERVER_NOT_FOUND/],
      [['rebalance', '--bogus'], 2, /unknown option --bogus/],
      [['rebalance', 'extra'], 2, /unexpected argument/],
      [['compact', '--threshold', '2'], 2, /--threshold/],
      [['compact', '--threshold', 'lots'], 2, /--threshold/],
      [['verify', '--concurrency', '3'], 2, /unknown option/],
      [['verify', '--repair', 'now'], 2, /unexpected argument now/],
      [['verify', 'now'], 2, /unexpected argument/],
    ];
    const results = await Promise.all(cases.map(([args]) => c.cli(args)));
    for (const [i, [args, code, msg]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr).toMatch(msg);
      oneLine(r.stderr);
    }
    const down = await c.cli(['rebalance', '--nameserver', 'http://127.0.0.1:9'], {});
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/unreachable/);
    oneLine(down.stderr);
    // the HTTP API refuses bad bodies with a stable code and starts nothing
    for (const body of [{ kind: 'explode' }, { kind: 'compact', threshold: 0 }, { kind: 'rebalance', dataserver: 'x' }, { kind: 'drain' }]) {
      const res = await fetch(`${c.nameserver.url}/ops`, { method: 'POST', headers: { 'x-ugcfs-secret': c.secret, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('UGCFS_ERR_BAD_REQUEST');
    }
    const nope = await fetch(`${c.nameserver.url}/ops/op-zzz-000000`, { headers: { 'x-ugcfs-secret': c.secret } });
    expect(nope.status).toBe(404);
    const unauth = await fetch(`${c.nameserver.url}/ops`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ kind: 'verify' }) });
    expect(unauth.status).toBe(401);
    expect(await nsGet<Operation[]>(c, '/ops')).toEqual([]);
  });
});

describe('drain', () => {
  it('moves every block off a server; then a SIGKILL of it loses nothing', async () => {
    const victim = c.dsIds[0]!;
    const before = await c.status();
    expect(before.dataservers.find((d) => d.id === victim)!.blocks).toBeGreaterThan(0);
    const dry = await c.cli(['drain', '--dry-run', victim]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`block copies to move off ${victim}`);
    expect((await c.status()).dataservers.find((d) => d.id === victim)!.draining).toBe(false);
    // Writes go on during the drain; none fails, and they all survive the victim's SIGKILL below.
    const writeErrors: string[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const data = randomBytes(900 + files.size);
        try {
          const w = await c.client.write(data);
          files.set(w.fid, data);
        } catch (err) {
          writeErrors.push((err as Error).message);
        }
        await new Promise((res) => setTimeout(res, 25));
      }
    })();
    const r = await c.cli(['drain', victim]);
    writing = false;
    await writer;
    expect(writeErrors).toEqual([]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/done/);
    const s = await c.waitFor((x) => x.dataservers.find((d) => d.id === victim)!.blocks === 0 && x.underReplicatedBlocks === 0, 'drained');
    expect(s.dataservers.find((d) => d.id === victim)!.draining).toBe(true);
    const human = await c.cli(['status']);
    expect(human.stdout).toMatch(/drain/);

    // takes no new writes
    for (let i = 0; i < 10; i++) {
      const data = randomBytes(1500);
      const w = await c.client.write(data);
      expect(w.replicas.map((x) => x.id)).not.toContain(victim);
      files.set(w.fid, data);
    }

    await c.killDataserver(0);
    for (const [fid, data] of files) expect((await c.client.read(fid)).data.equals(data)).toBe(true);
    const dead = await c.waitFor((x) => !x.dataservers.find((d) => d.id === victim)!.alive, 'victim dead');
    expect(dead.underReplicatedBlocks).toBe(0);
    for (const id of new Set([...files.keys()].map((f) => decodeFid(f).block))) {
      const loc = await nsGet<BlockLocation>(c, `/blocks/${id}`);
      expect(loc.replicas.map((x) => x.id)).not.toContain(victim);
      expect(loc.replicas.length).toBe(2);
    }
    expect(reader.errors).toEqual([]);

    // --undo returns it to service (it would take blocks again once back)
    const undo = await c.cli(['drain', '--undo', victim]);
    expect(undo.code, undo.stderr).toBe(0);
    expect((await c.status()).dataservers.find((d) => d.id === victim)!.draining).toBe(false);
  });
});

describe('compact', () => {
  it('gives back the bytes of deleted files; deleted stay 404, live stay byte-exact', async () => {
    const doomed = [...files.keys()].filter((_, i) => i % 3 !== 0);
    for (const fid of doomed) {
      reader.forget(fid);
      files.delete(fid);
      await c.client.delete(fid);
    }
    // the heartbeats carry the tombstones' effect on the deleted share
    const before = await c.waitFor((x) => x.dataservers.filter((d) => d.alive).every((d) => d.usedBytes > 0), 'reports after deletes');
    await new Promise((r) => setTimeout(r, 300));
    const usedBefore = (await c.status()).usedBytes;
    expect(before.usedBytes).toBeGreaterThan(0);

    // Writes go on during compaction (to other blocks) and none fails.
    const written = new Map<string, Buffer>();
    const writeErrors: string[] = [];
    let writing = true;
    const writer = (async () => {
      while (writing) {
        const data = randomBytes(800 + written.size * 7);
        try {
          written.set((await c.client.write(data)).fid, data);
        } catch (err) {
          writeErrors.push((err as Error).message);
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    const r = await c.cli(['compact', '--threshold', '0.1', '--json']);
    writing = false;
    await writer;
    expect(r.code, r.stderr).toBe(0);
    expect(writeErrors).toEqual([]);
    expect(written.size).toBeGreaterThan(0);
    for (const [fid, data] of written) expect((await c.client.read(fid)).data.equals(data)).toBe(true);
    const op = JSON.parse(r.stdout) as Operation;
    expect(op.state).toBe('done');
    expect(op.details!.compacted as number).toBeGreaterThan(0);
    expect(op.details!.failed).toBe(0);
    // Two thirds deleted: about a third stays (files written meanwhile, twice each, come on top).
    const added = [...written.values()].reduce((t, d) => t + 2 * (d.length + 64), 0);
    const after = await c.waitFor((x) => x.usedBytes - added < usedBefore * 0.5, 'stored bytes drop', 15_000);
    expect(after.usedBytes - added).toBeLessThan(usedBefore * 0.5);
    expect(after.usedBytes).toBeGreaterThan(usedBefore * 0.2);

    for (const fid of doomed.slice(0, 30)) await expect(c.client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    for (const [fid, data] of files) expect((await c.client.read(fid)).data.equals(data)).toBe(true);
    expect(reader.errors).toEqual([]);
  });
});

describe('verify', () => {
  it('finds a corrupted replica (exit 1), --repair mends it, a second verify is clean', async () => {
    const clean = await c.cli(['verify']);
    expect(clean.code, clean.stdout + clean.stderr).toBe(0);
    expect(clean.stdout).toMatch(/0 damaged/);

    // Flip bytes in the middle of one copy of a block holding live files.
    const fid = [...files.keys()][0]!;
    const block = decodeFid(fid).block;
    const loc = await nsGet<BlockLocation>(c, `/blocks/${block}`);
    const victim = loc.replicas[0]!.id;
    const dir = join(c.dir, victim, 'blocks');
    const name = readdirSync(dir).find((n) => n.startsWith(`${block}.`) && n.endsWith('.blk'))!;
    const path = join(dir, name);
    const size = statSync(path).size;
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(16, 0xa5), 0, 16, Math.floor(size / 2));
    closeSync(fd);

    const found = await c.cli(['verify', '--json']);
    expect(found.code).toBe(1);
    const op = JSON.parse(found.stdout) as Operation;
    const damage = op.details!.damage as Array<{ block: number; ds: string }>;
    expect(damage.some((d) => d.block === block && d.ds === victim)).toBe(true);
    expect(op.details!.remaining).toBeGreaterThan(0);

    const mended = await c.cli(['verify', '--repair']);
    expect(mended.code, mended.stdout + mended.stderr).toBe(0);
    expect(mended.stdout).toMatch(/repaired/);

    const again = await c.cli(['verify']);
    expect(again.code, again.stdout).toBe(0);
    const s = await c.waitFor((x) => x.underReplicatedBlocks === 0, 'fully replicated');
    expect(s.underReplicatedBlocks).toBe(0);
    expect((await nsGet<BlockLocation>(c, `/blocks/${block}`)).replicas.length).toBe(2);
    for (const [f, data] of files) expect((await c.client.read(f)).data.equals(data)).toBe(true);
    expect(reader.errors).toEqual([]);
  });
});
