// A data server holding 200,000 blocks registers with a real name server and is served: its
// full report goes in pages (no body limit caps it), every block is located on it, and after
// that each beat carries only what changed. The data server side is the real heartbeat loop
// (dataserver/heartbeat.ts: report session, cluster identity, epoch fence) over a list of
// 200,000 made-up blocks: a real block store keeps a file descriptor per block, and this
// machine's hard limit is 20,000 (docs/NAMESERVER.md, "Block reports").
import { describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterClock } from '../../dataserver/cluster-clock.ts';
import { ClusterIdentity } from '../../dataserver/cluster-identity.ts';
import { EpochFence } from '../../dataserver/epoch-fence.ts';
import { startHeartbeat } from '../../dataserver/heartbeat.ts';
import type { BlockStore } from '../../dataserver/block-store.ts';
import type { BlockRecord } from '../../nameserver/block-map.ts';
import { jsonSublevel, openStateDb } from '../../nameserver/state-db.ts';
import { callJson } from '../../src/clients/http-client.ts';
import { createLogger } from '../../src/base/log.ts';
import { createMetrics } from '../../src/base/metrics.ts';
import type { BlockLocation, BlockReport, DataserverStatus } from '../../src/wire/protocol.ts';
import { NS_ROUTES } from '../../src/wire/protocol.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { start, tempDir, TEST_SECRET, waitFor } from '../helpers/proc.ts';

const BLOCKS = 200_000;
const DS = 'big-ds';

/** What the made-up store holds: block id -> its report. */
function madeUpBlocks(): Map<number, BlockReport> {
  const m = new Map<number, BlockReport>();
  for (let id = 1; id <= BLOCKS; id++) m.set(id, { id, size: 1000 + id, liveCount: 3, liveBytes: 900 + id, deletedBytes: 100, sealed: true, readonly: true, gen: 0 });
  return m;
}

/** The part of BlockStore the heartbeat loop uses, over a list. */
function listStore(blocks: Map<number, BlockReport>): BlockStore {
  const store = {
    reports: () => [...blocks.values()],
    usedBytes: () => 0,
    updateGauges: () => {},
    quarantineStats: () => ({ files: 0, bytes: 0 }),
    has: (id: number) => blocks.has(id),
    quarantineBlock: async (id: number) => void blocks.delete(id),
    setReadonly: async () => {},
  };
  return store as unknown as BlockStore;
}

const sample = (text: { samples: Array<{ name: string; labels: Record<string, string>; value: number }> }, name: string, labels: Record<string, string> = {}) =>
  text.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0);

describe('a data server with 200,000 blocks', () => {
  it('registers with a paged full report, every block is located on it, then only changes travel', async () => {
    const { dir, cleanup } = tempDir();
    const nsDir = join(dir, 'ns');
    // The name server's state already knows the blocks (as after it allocated them).
    const db = await openStateDb(join(nsDir, 'state'));
    const records = jsonSublevel<BlockRecord>(db, 'blocks');
    for (let i = 1; i <= BLOCKS; i += 5000) {
      const ops = Array.from({ length: Math.min(5000, BLOCKS - i + 1) }, (_, j) => ({ type: 'put' as const, key: String(i + j), value: { id: i + j, replication: 1, state: 'sealed' as const, replicas: [DS], createdAt: 1 } }));
      await records.batch(ops, { atomic: false, sync: false });
    }
    await db.close();

    const ns = await start(['nameserver', '--data', nsDir, '--port', '0', '--replicas', '1', '--heartbeat-ms', '500', '--startup-grace-ms', '0'], { env: { UGCFS_CLUSTER_SECRET: TEST_SECRET } });
    const blocks = madeUpBlocks();
    const dsDir = join(dir, 'ds');
    mkdirSync(dsDir, { recursive: true });
    const { metrics } = createMetrics('dataserver');
    const loop = startHeartbeat({
      id: DS,
      url: 'http://127.0.0.1:9',
      rack: '',
      nameserver: ns.url,
      secret: TEST_SECRET,
      intervalMs: 500,
      dataDir: dsDir,
      blockSize: 256 * 2 ** 20,
      store: listStore(blocks),
      metrics,
      log: createLogger({ level: 'silent', name: 'dataserver:big-ds' }),
      identity: await ClusterIdentity.load(dsDir),
      fence: await EpochFence.load(dsDir),
      clock: new ClusterClock(),
    });
    try {
      const ds = await waitFor('the data server registered with all its blocks', async () => {
        const list = await callJson<DataserverStatus[]>(ns.url + NS_ROUTES.dataservers, { secret: TEST_SECRET });
        const me = list.find((d) => d.id === DS);
        return me?.alive && me.blocks === BLOCKS ? me : undefined;
      }, 60_000, 250);
      expect(ds.blocks).toBe(BLOCKS);
      // Ten pages of 20,000: one heartbeat each, every one under the body limit.
      const m1 = await scrapeMetrics(ns.url);
      expect(sample(m1, 'ugcfs_report_messages_total', { kind: 'full' })).toBe(BLOCKS / 20_000);
      expect(sample(m1, 'ugcfs_report_full_requests_total')).toBe(1); // its first beat asked for the turn
      // Served: any block is located on it.
      for (const id of [1, 77_777, 123_456, BLOCKS]) {
        const loc = await callJson<BlockLocation>(ns.url + NS_ROUTES.block.replace(':id', String(id)), { secret: TEST_SECRET });
        expect(loc.replicas.map((r) => r.id)).toEqual([DS]);
      }
      const status = await callJson<{ underReplicatedBlocks: number; blocks: number }>(ns.url + NS_ROUTES.status, { secret: TEST_SECRET });
      expect(status).toMatchObject({ underReplicatedBlocks: 0, blocks: BLOCKS });

      // Quiet beats carry nothing; three changed blocks carry three entries.
      const entries = async () => sample(await scrapeMetrics(ns.url), 'ugcfs_report_entries_total');
      const deltas = async () => sample(await scrapeMetrics(ns.url), 'ugcfs_report_messages_total', { kind: 'delta' });
      const e0 = await entries();
      const d0 = await deltas();
      await waitFor('a few quiet beats', async () => (await deltas()) >= d0 + 3, 20_000, 100);
      expect(await entries()).toBe(e0);
      for (const id of [10, 20, 30]) blocks.set(id, { ...blocks.get(id)!, deletedBytes: 500, liveCount: 2 });
      blocks.delete(40);
      await waitFor('the change reported', async () => (await entries()) >= e0 + 4, 20_000, 100);
      const d1 = await deltas();
      await waitFor('two more beats', async () => (await deltas()) >= d1 + 2, 20_000, 100);
      const after = await scrapeMetrics(ns.url);
      expect(sample(after, 'ugcfs_report_entries_total')).toBe(e0 + 4);
      expect(sample(after, 'ugcfs_report_full_requests_total')).toBe(1);
      // Block 40 is gone from the server: no copy left, so it counts as under-replicated.
      await waitFor('block 40 under-replicated', async () => (await callJson<{ underReplicatedBlocks: number }>(ns.url + NS_ROUTES.status, { secret: TEST_SECRET })).underReplicatedBlocks === 1, 10_000, 100);
    } finally {
      await loop.stop();
      await ns.kill('SIGTERM');
      cleanup();
    }
  }, 180_000);
});
