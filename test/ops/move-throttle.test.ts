// The name server's --move-bytes-per-sec caps what cluster operations copy between data
// servers (nameserver/ops-engine.ts: each move waits until the operation's bytes so far fit
// the rate since it started). A drain of ~3 MB at 1 MB/s on a real cluster must take at least
// bytes/rate, and every file must read back byte-exact with the drained server SIGKILLed.
// Only the lower bound is asserted: a loaded machine can make the drain slower, never faster,
// while an unthrottled drain being quicker would be a speed claim, which belongs in bench/.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { NS_ROUTES, type Operation } from '../../src/wire/protocol.ts';
import { nsGet, startCluster, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

const RATE = 1_000_000; // bytes per second
const FILES = 40;
const FILE_BYTES = 100_000;

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, nameserverArgs: ['--move-bytes-per-sec', String(RATE)] });
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

async function postOp(body: Record<string, unknown>): Promise<Operation> {
  const res = await fetch(c.nameserver.url + NS_ROUTES.ops, { method: 'POST', headers: { 'x-ugcfs-secret': c.secret, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (res.status !== 200 && res.status !== 201) throw new Error(`POST /ops: ${res.status} ${await res.text()}`);
  return (await res.json()) as Operation;
}

describe('--move-bytes-per-sec', () => {
  it('holds a drain to the rate: it takes at least bytes/rate, and every file survives it', async () => {
    const files = new Map<string, Buffer>();
    const payloadOn = new Map<string, number>();
    for (let i = 0; i < FILES; i += 8) {
      const batch = Array.from({ length: 8 }, () => randomBytes(FILE_BYTES));
      const written = await Promise.all(batch.map((data) => c.client.write(data, { mime: 'application/octet-stream' })));
      written.forEach((w, j) => {
        files.set(w.fid, batch[j]!);
        for (const r of w.replicas) payloadOn.set(r.id, (payloadOn.get(r.id) ?? 0) + FILE_BYTES);
      });
    }
    const [victim, payload] = [...payloadOn].sort((a, b) => b[1] - a[1])[0]!;
    expect(payload).toBeGreaterThanOrEqual(2_000_000);

    // The drain throttles on block sizes the victim reported; wait until its reports hold
    // every file written, so the bytes it waits for are at least `payload`.
    await waitFor('the victim to report every file it holds', async () => {
      const plan = await postOp({ kind: 'drain', dataserver: victim, dryRun: true });
      const moves = plan.details!.moves as Array<{ bytes: number; to?: string }>;
      return moves.every((m) => m.to) && moves.reduce((s, m) => s + m.bytes, 0) >= payload;
    }, 30_000, 100);

    const started = await postOp({ kind: 'drain', dataserver: victim });
    expect(started.state).toBe('running');
    const op = await waitFor('the drain to finish', async () => {
      const o = await nsGet<Operation>(c, NS_ROUTES.op.replace(':id', started.id));
      return o.state === 'running' ? undefined : o;
    }, 60_000, 100);
    expect(op.state, op.message).toBe('done');
    expect(op.bytesDone).toBeGreaterThanOrEqual(payload);
    expect(op.finishedAt! - op.startedAt).toBeGreaterThanOrEqual((payload / RATE) * 1000);

    const s = await c.waitFor((x) => x.dataservers.find((d) => d.id === victim)!.blocks === 0 && x.underReplicatedBlocks === 0, 'victim empty, every block fully replicated');
    expect(s.dataservers.find((d) => d.id === victim)!.draining).toBe(true);
    // Only the moved copies are left to read from.
    await c.killDataserver(c.dsIds.indexOf(victim));
    for (const [fid, data] of files) expect((await c.client.read(fid)).data.equals(data), fid).toBe(true);
  }, 60_000);
});
