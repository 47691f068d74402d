// Power-cut matrix: the name server and every data server keep their data on their own
// power-cut file system (test/helpers/powercut-fs: what fsync, fdatasync or a directory's
// fsync did not make durable is lost at a cut). Under a mixed load — replicated writes and
// deletes through the cluster client, compactions, a rebalance onto a data server added
// mid-run, repair copies while a server stays down — a seeded schedule cuts the power of one
// role, or of every role at once, at random moments, at least 30 times, and restarts what it
// cut. Afterwards every acknowledged write reads back byte-exact, every acknowledged delete
// stays deleted on every copy, and after `ugcfs verify --repair` `ugcfs verify` is clean.
// Replay a failing run with UGCFS_FAULT_SEED; UGCFS_SOAK=1 makes it 200 cuts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { fuseUsable, mountPowerCutFs, type PowerCutFs } from '../helpers/power-cut.ts';
import { tempDir, waitFor, type Proc } from '../helpers/proc.ts';
import { faultSeed, seededRandom, sleep } from './fault-kit.ts';
import { Ledger, operationsRunning, startOperation } from './ledger.ts';

const CUTS = Number(process.env.UGCFS_POWER_CUTS) || (process.env.UGCFS_SOAK === '1' ? 200 : 32);
const fuse = fuseUsable();
if (!fuse.ok) console.warn(`power-cut matrix skipped: ${fuse.reason}`);

describe.skipIf(!fuse.ok)('power-cut matrix: cuts of one role or all under mixed load', () => {
  const seed = faultSeed();
  const rnd = seededRandom(seed);
  const tmp = tempDir('ugcfs-powercut-matrix-');
  /** role -> its file system: 'ns', 'ds:0'... */
  const disks = new Map<string, PowerCutFs>();
  let cluster: Cluster;
  let ledger: Ledger;
  const cuts: string[] = [];
  const counts = { opsStarted: 0, dirtyBytesLost: 0 };
  const allProcs: Array<[string, Proc]> = [];

  const mount = async (role: string, sub: string) => {
    const at = join(tmp.dir, sub);
    mkdirSync(at, { recursive: true });
    disks.set(role, await mountPowerCutFs(at));
  };

  beforeAll(async () => {
    console.log(`power-cut matrix seed=${seed} (replay with UGCFS_FAULT_SEED=${seed})`);
    await mount('ns', 'ns');
    for (let i = 0; i < 4; i++) await mount(`ds:${i}`, `ds-${i + 1}`);
    cluster = await startCluster({ dir: tmp.dir, dataservers: 3, replicas: 2, racks: [''], blockSize: 96 * 1024, fsync: true, deadAfterMs: 1000, repairDelayMs: 300, startupGraceMs: 500 });
    ledger = new Ledger(cluster, rnd);
    allProcs.push(['ns', cluster.nameserver], ...cluster.dataservers.map((p, i) => [`ds:${i}`, p] as [string, Proc]));
  }, 120_000);

  afterAll(async () => {
    if (ledger) {
      const l = ledger;
      console.log(`power-cut matrix: ${cuts.length} cuts [${cuts.join(' ')}] ${JSON.stringify({ ...l.counts, ...counts })} live=${l.live.size} deleted=${l.deleted.size} uncertain=${l.uncertain.size} write failures ${JSON.stringify(Object.fromEntries(l.failures))}`);
    }
    await cluster?.stop();
    for (const d of disks.values()) await d.unmount().catch(() => {});
    tmp.cleanup();
  });

  const procOf = (role: string): Proc | undefined => (role === 'ns' ? cluster.nameserver : cluster.dataservers[Number(role.slice(3))]);

  const startOp = async (body: Record<string, unknown>) => {
    if (await startOperation(cluster, body)) counts.opsStarted++;
  };

  it('keeps every acknowledged write and delete through at least 30 power cuts', async () => {
    let stop = false;
    const loop = async (step: () => Promise<unknown>) => {
      while (!stop) await step();
    };
    const restart = async (role: string) => {
      if (role === 'ns') allProcs.push([role, await cluster.restartNameserver()]);
      else allProcs.push([role, await cluster.restartDataserver(Number(role.slice(3)))]);
    };
    /** Cuts the power of `roles` together: each role's process dies, then its disk loses what was not durable. */
    const cutPower = async (roles: string[]) => {
      for (const r of roles) counts.dirtyBytesLost += (await disks.get(r)!.stats()).dirtyBytes;
      await Promise.all(roles.map((r) => disks.get(r)!.cut([procOf(r)!.child])));
    };

    const t0 = Date.now();
    const workers = [
      ...[1, 2, 3].map(() => loop(() => ledger.write(12_000))),
      loop(async () => {
        await sleep(120);
        await ledger.delete(ledger.clientDelete);
      }),
      loop(async () => {
        // a read may fail while roles are down; the end checks every acknowledged file
        if ((await ledger.read()) === undefined) await sleep(50);
        await sleep(20);
      }),
    ];
    const dsCount = () => cluster.dataservers.length;
    for (let n = 0; n < CUTS; n++) {
      // Operations at fixed points, so every run cuts the power during each kind.
      if (n === 3 || n === 14 || n === 24) void startOp({ kind: 'compact', threshold: 0.01 });
      if (n === 8) {
        await cluster.addDataserver();
        allProcs.push(['ds:3', cluster.dataservers[3]!]);
        void startOp({ kind: 'rebalance' });
      }
      await sleep(300 + rnd() * 900);
      const roll = rnd();
      let roles: string[];
      if (roll < 0.25) roles = ['ns', ...Array.from({ length: dsCount() }, (_, i) => `ds:${i}`)];
      else if (roll < 0.45) roles = ['ns'];
      else roles = [`ds:${Math.floor(rnd() * dsCount())}`];
      // Now and then a data server stays down past the dead time: its blocks are copied to
      // others (repair) while the cuts go on.
      const longDown = roles.length === 1 && roles[0] !== 'ns' && rnd() < 0.2;
      await cutPower(roles);
      cuts.push(`${roles.length > 2 ? 'all' : roles.join('+')}${longDown ? '(long)' : ''}@${((Date.now() - t0) / 1000).toFixed(1)}s`);
      if (longDown) await sleep(1800);
      await Promise.all(roles.map(restart));
    }
    await sleep(2000);
    stop = true;
    await Promise.all(workers);
    expect(ledger.errors, ledger.errors.slice(0, 5).join('\n')).toEqual([]);
    expect(cuts.length).toBeGreaterThanOrEqual(30);
    expect(ledger.counts.writes).toBeGreaterThan(100);
    // The cuts were real: they threw away bytes that had not been made durable.
    expect(counts.dirtyBytesLost).toBeGreaterThan(0);

    const dump = () => {
      const path = `/tmp/ugcfs-power-cut-matrix-${seed}.log`;
      writeFileSync(path, allProcs.map(([role, p]) => p.lines.map((l) => `${role} ${l}`).join('\n')).join('\n') + `\ncuts: ${cuts.join(' ')}\n`);
      return path;
    };
    try {
      await cluster.waitFor((s) => s.dataservers.every((d) => d.alive) && s.underReplicatedBlocks === 0, 'healed cluster', 120_000);
      await waitFor(
        'operations finished',
        async () => (await operationsRunning(cluster)).length === 0,
        120_000,
        250,
      );
    } catch (err) {
      console.log(`power-cut matrix: cluster did not heal (logs in ${dump()})`);
      throw err;
    }

    const lost = await ledger.lost();
    if (lost.length > 0) console.log(`LOST after power cuts: ${lost.slice(0, 10).join('; ')} (logs in ${dump()})`);
    console.log(`power-cut matrix: ${ledger.live.size} acknowledged files checked, lost: ${lost.length}`);
    expect(lost).toEqual([]);
    const resurrected = await ledger.resurrected();
    if (resurrected.length > 0) console.log(`RESURRECTED after power cuts: ${resurrected.join('; ')} (logs in ${dump()})`);
    expect(resurrected).toEqual([]);
    await ledger.expectUncertainSettled();
    console.log(`power-cut matrix verify: ${await ledger.expectVerifyCleanAfterRepair()}`);
  }, 900_000);
});
