// The name server's own upkeep: with a compaction interval set, it compacts blocks past the
// threshold by itself and records the operation (details.auto) in status; with a balance
// interval set, it rebalances onto a server that joins. The name server runs in this test
// process so the operation settings (nameserver/ops-config.ts) can be given before the
// name server's own flags carry them; data servers are real processes.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import { startNameserver, type RunningNameserver } from '../../nameserver/main.ts';
import { OPS_OPTIONS } from '../../nameserver/ops-config.ts';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { loadConfig } from '../../src/base/config.ts';
import { createLogger } from '../../src/base/log.ts';
import { start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';

const secret = randomBytes(24).toString('hex');
const { dir, cleanup } = tempDir('ugcfs-auto-upkeep-');
let ns: RunningNameserver;
let client: ClusterClient;
const ds: Proc[] = [];
const files = new Map<string, Buffer>();

function startDs(i: number, rack: string): Promise<Proc> {
  return start(['dataserver', '--data', join(dir, `ds-${i}`), '--id', `ds-${i}`, '--nameserver', ns.url, '--port', '0', '--rack', rack, '--block-size', String(32 * 1024), '--heartbeat-ms', '100', '--fsync=false'], {
    env: { UGCFS_CLUSTER_SECRET: secret },
  });
}

beforeAll(async () => {
  const { config } = loadConfig({ ...NAMESERVER_OPTIONS, ...OPS_OPTIONS }, {
    argv: ['--data', join(dir, 'ns'), '--port', '0', '--heartbeat-ms', '100', '--dead-after-ms', '800', '--startup-grace-ms', '300', '--compact-interval-ms', '400', '--compact-threshold', '0.3', '--balance-interval-ms', '400', '--balance-threshold', '0.5'],
    env: { UGCFS_CLUSTER_SECRET: secret },
  });
  ns = await startNameserver(config, { log: createLogger({ name: 'nameserver', level: 'error' }) });
  ds.push(...(await Promise.all([startDs(1, 'a'), startDs(2, 'b')])));
  client = new ClusterClient({ nameserver: ns.url, secret, timeoutMs: 5000, locationTtlMs: 2000 });
  await waitFor('data servers alive', async () => (await client.status()).dataservers.filter((d) => d.alive).length === 2, 20_000);
  for (let i = 0; i < 60; i += 6) {
    const batch = Array.from({ length: 6 }, () => randomBytes(2000 + i * 20));
    const written = await Promise.all(batch.map((b) => client.write(b)));
    written.forEach((w, j) => files.set(w.fid, batch[j]!));
  }
});
afterAll(async () => {
  await Promise.all(ds.map((p) => p.kill('SIGKILL')));
  await client?.close();
  await ns?.close();
  cleanup();
});

describe('automatic upkeep', () => {
  it('compacts by itself once deletes pass the threshold', async () => {
    const doomed = [...files.keys()].filter((_, i) => i % 4 !== 0);
    for (const fid of doomed) {
      await client.delete(fid);
      files.delete(fid);
    }
    const s = await waitFor('automatic compaction done', async () => {
      const st = await client.status();
      const op = st.operations.find((o) => o.kind === 'compact' && o.details?.auto === true && o.state === 'done');
      return op && (op.details!.compacted as number) > 0 ? st : undefined;
    }, 30_000, 100);
    expect(s.operations.filter((o) => o.kind === 'compact').every((o) => o.details?.auto === true)).toBe(true);
    for (const fid of doomed.slice(0, 10)) await expect(client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    for (const [fid, data] of files) expect((await client.read(fid)).data.equals(data)).toBe(true);
  });

  it('rebalances by itself onto a server that joins', async () => {
    ds.push(await startDs(3, 'c'));
    const s = await waitFor('automatic rebalance done', async () => {
      const st = await client.status();
      const op = st.operations.find((o) => o.kind === 'rebalance' && o.details?.auto === true && o.state === 'done');
      const joined = st.dataservers.find((d) => d.id === 'ds-3');
      return op && joined && joined.blocks > 0 && st.underReplicatedBlocks === 0 ? st : undefined;
    }, 40_000, 100);
    expect(s.dataservers.find((d) => d.id === 'ds-3')!.usedBytes).toBeGreaterThan(0);
    for (const [fid, data] of files) expect((await client.read(fid)).data.equals(data)).toBe(true);
  });
});
