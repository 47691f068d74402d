// Two claims a hung data server must not keep. A claim is the block map's busy mark: while it
// is held the block takes no writes, no repair, and verify reports it "not-checked".
//  - verify scrubs every copy of a claimed block; a server that hangs without dying used to
//    hold the scrub, and the claim, for the whole scrub timeout (10 min). The scrub now gives
//    up once its server is declared dead.
//  - compact waits for a block's claim; when it gets it after the copy's server was declared
//    dead it skips that copy, and must hand the claim back (fixed in 30b3778), or the block
//    stays busy ('compacting') until the name server restarts.
// On a real cluster, in this order: SIGSTOP X (it still counts as alive for --dead-after-ms
// but answers nothing); verify claims the block and scrubs X, which hangs; compact starts
// while X is alive, so X's copy is a candidate, and waits for the claim; the name server
// declares X dead; with X still stopped, verify must finish and let go; compact then claims
// the block, finds X dead, skips X's copy, compacts Y's, and must let go too. SIGSTOP rather
// than a throttle or a timer holds the server: nothing ends before the test says so, whatever
// the machine's load. GET /blocks/:id's state is the block map's busy reason when there is
// one, so it shows directly whether a claim was left.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import { callJson } from '../../src/clients/http-client.ts';
import { DS_ROUTES, NS_ROUTES, type BlockLocation, type BlockReport, type Operation } from '../../src/wire/protocol.ts';
import { nsGet, startCluster, writeRandomFiles, type Cluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

// Long enough that verify and compact both start, over HTTP, between the SIGSTOP and the death.
const DEAD_AFTER_MS = 3000;

let c: Cluster;
beforeAll(async () => {
  // One writable block, on both servers: verify's first block is the one compact waits for.
  c = await startCluster({ dataservers: 2, replicas: 2, deadAfterMs: DEAD_AFTER_MS, nameserverArgs: ['--writable-blocks', '1'] });
}, 60_000);
afterAll(async () => {
  await c?.stop();
});

const startOp = (body: Record<string, unknown>) => callJson<Operation>(c.nameserver.url + NS_ROUTES.ops, { method: 'POST', body, secret: c.secret, timeoutMs: 5000 });
const blockState = async (block: number) => (await nsGet<BlockLocation>(c, NS_ROUTES.block.replace(':id', String(block)))).state;
const finished = (id: string) =>
  waitFor(`operation ${id} to finish`, async () => {
    const op = await nsGet<Operation>(c, NS_ROUTES.op.replace(':id', id));
    return op.state === 'running' ? undefined : op;
  }, 30_000);

describe('a data server that hangs while operations hold its block', () => {
  it('holds neither verify\'s claim past its death nor compact\'s after it skips the copy', async () => {
    const files = new Map<string, Buffer>();
    await writeRandomFiles(c, files, { count: 1, batch: 1, spread: 1 });
    await writeRandomFiles(c, files, { count: 30, batch: 5, spread: 271 });
    const block = Math.min(...[...files.keys()].map((f) => decodeFid(f).block));
    const doomed = [...files.keys()].filter((f, i) => decodeFid(f).block === block && i % 3 !== 0);
    expect(doomed.length).toBeGreaterThan(5);
    for (const fid of doomed) await c.client.delete(fid);

    // Compact picks copies from the block reports the name server holds: wait until each
    // server's last heartbeat was sent after the last tombstone was appended.
    for (const [i, id] of c.dsIds.entries()) {
      const reports = await callJson<BlockReport[]>(c.dataservers[i]!.url + DS_ROUTES.blocks, { secret: c.secret });
      const used = reports.reduce((s, r) => s + r.size, 0);
      await c.waitFor((s) => s.dataservers.find((d) => d.id === id)?.usedBytes === used, `${id}'s report after the deletes`, 10_000);
    }
    const x = 0;
    const xId = c.dsIds[x]!;
    expect((await nsGet<BlockLocation>(c, NS_ROUTES.block.replace(':id', String(block)))).replicas.map((r) => r.id).sort()).toEqual([...c.dsIds].sort());

    c.dataservers[x]!.child.kill('SIGSTOP');
    const verify = await startOp({ kind: 'verify' });
    await waitFor('verify to claim the block', async () => (await blockState(block)) === 'verifying', 5000, 20);
    const compact = await startOp({ kind: 'compact', threshold: 0.1 });
    // Both copies are candidates: X was still alive when compact looked.
    expect(compact.total).toBe(2);

    await c.waitFor((s) => s.dataservers.find((d) => d.id === xId)?.alive === false, `${xId} declared dead`, 15_000);
    // X is still stopped: verify finishes because its scrub of X gave up, not because X died.
    const checked = await finished(verify.id);
    expect(checked.state).toBe('done');
    expect(JSON.stringify(checked.details)).toContain('declared dead during the scrub');
    const done = await finished(compact.id);
    expect(done.state, done.message).toBe('done');
    expect(done.details).toMatchObject({ compacted: 1, skipped: 1, failed: 0 });
    // Not busy; and not writable, with one of its two holders dead.
    expect(await blockState(block)).toBe('readonly');
    await c.killDataserver(x);
  }, 60_000);
});
