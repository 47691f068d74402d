// Rebalance on a real cluster while a background reader reads every file: a fourth data
// server joins and ends within 40% of the mean used bytes; then a fifth joins and the name
// server is SIGKILLed in the middle of the rebalance: no block loses a copy, the operation
// reads 'interrupted' after the restart, and running it again finishes the job.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { BlockLocation, ClusterStatus, Operation } from '../../src/wire/protocol.ts';
import { nsGet, startCluster, writeRandomFiles, type Cluster } from '../helpers/cluster.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { BIN, ROOT, waitFor } from '../helpers/proc.ts';
import { startReader, type BackgroundReader } from './background-reader.ts';

let c: Cluster;
let reader: BackgroundReader | undefined;
const files = new Map<string, Buffer>();

beforeAll(async () => {
  c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, blockSize: 32 * 1024 });
  await writeRandomFiles(c, files, { count: 160, batch: 8, spread: 977 });
});
afterAll(async () => {
  await reader?.stop();
  await c?.stop();
});

function blockIds(): number[] {
  return [...new Set([...files.keys()].map((f) => decodeFid(f).block))].sort((a, b) => a - b);
}

/** Every block holding our files has its 2 live copies, on distinct servers and racks. */
async function assertFullyReplicated(s: ClusterStatus): Promise<void> {
  const rack = new Map(s.dataservers.map((d) => [d.id, d.rack]));
  for (const id of blockIds()) {
    const loc = await nsGet<BlockLocation>(c, `/blocks/${id}`);
    const ids = loc.replicas.map((r) => r.id);
    expect(ids.length, `block ${id} copies`).toBeGreaterThanOrEqual(2);
    expect(new Set(ids).size).toBe(ids.length);
    // three racks, two copies: always on two racks (an extra copy left by a cut move may share one)
    expect(new Set(ids.map((x) => rack.get(x))).size, `block ${id} racks`).toBeGreaterThanOrEqual(2);
  }
}

function withinOfMean(s: ClusterStatus, id: string): { used: number; mean: number } {
  const live = s.dataservers.filter((d) => d.alive);
  const mean = live.reduce((t, d) => t + d.usedBytes, 0) / live.length;
  return { used: s.dataservers.find((d) => d.id === id)!.usedBytes, mean };
}

describe('rebalance', () => {
  it('evens out used bytes onto a new fourth server; --dry-run changes nothing', async () => {
    reader = startReader(c, files);
    const i = await c.addDataserver();
    const newId = c.dsIds[i]!;
    await c.waitForAlive();

    const dry = await c.cli(['rebalance', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/moves planned/);
    expect(dry.stdout).toContain(`-> ${newId}`);
    const dryJson = await c.cli(['rebalance', '--dry-run', '--json']);
    const plan = JSON.parse(dryJson.stdout) as Operation;
    expect(plan.state).toBe('planned');
    expect(plan.total).toBeGreaterThan(0);
    expect((await c.status()).dataservers.find((d) => d.id === newId)!.blocks).toBe(0);

    const res = await c.cli(['rebalance', '--json']);
    expect(res.code, res.stderr).toBe(0);
    const op = JSON.parse(res.stdout) as Operation;
    expect(op.state).toBe('done');
    expect(op.done).toBe(op.total);
    expect(op.bytesDone).toBeGreaterThan(0);

    // used bytes come with the next heartbeats
    const s = await c.waitFor((x) => x.dataservers.find((d) => d.id === newId)!.usedBytes > 0 && x.underReplicatedBlocks === 0, 'new server reports its copies');
    const { used, mean } = withinOfMean(s, newId);
    expect(Math.abs(used - mean) / mean).toBeLessThanOrEqual(0.4);
    await assertFullyReplicated(s);
    expect(s.operations.some((o) => o.id === op.id && o.state === 'done')).toBe(true);
    const human = await c.cli(['status']);
    expect(human.stdout).toContain(op.id);
    expect(await metric(c.nameserver.url, 'ugcfs_block_moves_total', { kind: 'rebalance', result: 'ok' })).toBe(op.details!.moved);
    expect(op.details!.moved).toBeGreaterThan(0);

    // a second run finds (almost) nothing left to do
    const again = await c.cli(['rebalance', '--dry-run', '--json']);
    expect((JSON.parse(again.stdout) as Operation).total).toBeLessThan(op.total);

    expect(reader.errors).toEqual([]);
    expect(reader.reads).toBeGreaterThan(files.size);
  });

  it('survives a name-server SIGKILL mid-rebalance; re-running finishes the job', async () => {
    // Readers need the name server for locations; this one caches them long enough to read
    // through the outage (a moved copy is failed over to the block's other cached copy).
    await reader!.stop();
    reader = startReader(c, files, { locationTtlMs: 600_000 });
    await waitFor('reader cached every location', () => reader!.reads >= files.size, 30_000);
    const i = await c.addDataserver();
    const newId = c.dsIds[i]!;
    await c.waitForAlive();
    // Slowed down so the kill lands while moves are under way.
    const started = await c.cli(['rebalance', '--detach', '--json', '--bytes-per-sec', '40000', '--concurrency', '1']);
    expect(started.code, started.stderr).toBe(0);
    const op = JSON.parse(started.stdout) as Operation;
    expect(op.state).toBe('running');
    await waitFor('some moves done', async () => {
      const o = await nsGet<Operation>(c, `/ops/${op.id}`);
      return o.done >= 1 && o.done < o.total ? o : undefined;
    }, 30_000, 50);
    await c.killNameserver('SIGKILL');
    await c.restartNameserver();
    await c.waitForAlive();

    const after = await nsGet<Operation>(c, `/ops/${op.id}`);
    expect(after.state).toBe('interrupted');
    expect(after.done).toBeLessThan(after.total);
    // Every block still has its copies (a copy added but not yet dropped is an extra, never a loss).
    const s = await c.waitFor((x) => x.underReplicatedBlocks === 0, 'reports back after restart');
    await assertFullyReplicated(s);
    for (const [fid, data] of files) expect((await c.client.read(fid)).data.equals(data)).toBe(true);

    // Re-run; Ctrl-C of the CLI once it shows progress stops the watching, not the operation.
    const cli = spawn(process.execPath, [BIN, 'rebalance', '--bytes-per-sec', '60000'], { cwd: ROOT, env: { ...process.env, ...c.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((res) => cli.on('exit', (code) => res(code)));
    let opId: string;
    try {
      opId = await waitFor('progress line', () => /rebalance (op-[0-9a-z]+-[0-9a-f]+):/.exec(stderr)?.[1], 30_000, 50);
      cli.kill('SIGINT');
      expect(await exited).toBe(1);
    } finally {
      if (cli.exitCode === null && cli.signalCode === null) cli.kill('SIGKILL');
    }
    expect(stderr).toMatch(/keeps running on the name server/);
    const finished = await waitFor('operation done without its CLI', async () => {
      const o = await nsGet<Operation>(c, `/ops/${opId}`);
      return o.state === 'running' ? undefined : o;
    }, 60_000, 100);
    expect(finished.state).toBe('done');
    const s2 = await c.waitFor((x) => x.underReplicatedBlocks === 0 && x.dataservers.find((d) => d.id === newId)!.usedBytes > 0, 'settled');
    await new Promise((r) => setTimeout(r, 300));
    const s3 = await c.status();
    const { used, mean } = withinOfMean(s3, newId);
    expect(Math.abs(used - mean) / mean).toBeLessThanOrEqual(0.4);
    await assertFullyReplicated(s2);
    // no block is left with an extra copy either
    for (const id of blockIds()) expect((await nsGet<BlockLocation>(c, `/blocks/${id}`)).replicas.length).toBe(2);
    expect(reader!.errors).toEqual([]);
  });
});
