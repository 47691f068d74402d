// Where the name server's cluster id comes from (nameserver/cluster-id.ts), on a real
// LevelDB state: made once and kept; under --adopt-blocks on a state that allocated
// nothing, learnt from the first data server reporting one — and a slow start whose grace
// ran out before anyone reported does not decide on its own.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterIdentity } from '../../nameserver/cluster-id.ts';
import { jsonSublevel, openStateDb } from '../../nameserver/state-db.ts';
import { createLogger } from '../../src/base/log.ts';
import { tempDir } from '../helpers/proc.ts';

const tmp = tempDir('ugcfs-cluster-id-');
afterAll(() => tmp.cleanup());
const log = createLogger({ name: 'test', level: 'silent' });

async function withState<T>(name: string, fn: (meta: ReturnType<typeof jsonSublevel<string>>) => Promise<T>): Promise<T> {
  const db = await openStateDb(join(tmp.dir, name));
  try {
    return await fn(jsonSublevel<string>(db, 'meta'));
  } finally {
    await db.close();
  }
}

/** As a name server that leads opens it: read, then the take-over settles what is missing. */
async function leading(meta: Parameters<typeof ClusterIdentity.open>[0], o: Parameters<typeof ClusterIdentity.open>[1]): Promise<ClusterIdentity> {
  const ci = await ClusterIdentity.open(meta, o);
  await ci.takeOver();
  return ci;
}

describe('the cluster id', () => {
  it('is made at the first start and kept, with the state id', async () => {
    const first = await withState('a', (meta) => leading(meta, { learn: false, learnUntil: 0, log }));
    expect(first.clusterId).toMatch(/^c-[0-9a-f]{16}$/);
    expect(first.stateId).toMatch(/^s-[0-9a-f]{16}$/);
    const again = await withState('a', (meta) => leading(meta, { learn: false, learnUntil: 0, log }));
    expect([again.clusterId, again.stateId]).toEqual([first.clusterId, first.stateId]);
  });

  it('under --adopt-blocks is learnt from the first data server with one, replacing a stored id no member has', async () => {
    const made = await withState('b', (meta) => leading(meta, { learn: false, learnUntil: 0, log }));
    await withState('b', async (meta) => {
      const now = Date.now();
      const ci = await leading(meta, { learn: true, learnUntil: now + 1000, log });
      expect(ci.isLearning).toBe(true);
      expect(ci.clusterId).toBeUndefined();
      // the grace ran out before anyone reported (a slow start): still learning
      await ci.tick(now + 5000);
      expect(ci.isLearning).toBe(true);
      await ci.learn('c-00000000000000aa', 'ds-2');
      await ci.learn('c-00000000000000bb', 'ds-3');
      expect(ci.clusterId).toBe('c-00000000000000aa');
      expect(ci.stateId).toBe(made.stateId);
    });
    const back = await withState('b', (meta) => leading(meta, { learn: false, learnUntil: 0, log }));
    expect(back.clusterId).toBe('c-00000000000000aa');
  });

  it('under --adopt-blocks, with only data servers without an id, keeps the stored id after the grace', async () => {
    const made = await withState('c', (meta) => leading(meta, { learn: false, learnUntil: 0, log }));
    await withState('c', async (meta) => {
      const now = Date.now();
      const ci = await leading(meta, { learn: true, learnUntil: now + 1000, log });
      ci.noteUnidentified();
      await ci.tick(now + 500);
      expect(ci.isLearning).toBe(true);
      await ci.tick(now + 1000);
      expect(ci.isLearning).toBe(false);
      expect(ci.clusterId).toBe(made.clusterId);
    });
  });
});
