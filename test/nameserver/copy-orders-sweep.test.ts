// The sweep evaluates a block's copies only when CopyOrders.mayOrderBlock says one may need
// an order. That answer is read from the copy table's columns, so it is checked here against
// the per-copy rule (mayOrder on each materialised report) over every combination that
// decides it: block state, busy or not, the copy's sealed and read-only flags, and whether
// its server is in the replica set.
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockMap, type BlockRecord, type BlockState } from '../../nameserver/block-map.ts';
import { CopyOrders } from '../../nameserver/copy-orders.ts';
import { Registry } from '../../nameserver/registry.ts';
import { jsonSublevel, openStateDb, type RootDb } from '../../nameserver/state-db.ts';
import type { BlockReport } from '../../src/wire/protocol.ts';
import { tempDir } from '../helpers/proc.ts';

const SERVERS = ['ds-1', 'ds-2', 'ds-3'];
const STATES: BlockState[] = ['creating', 'writable', 'sealed', 'failed', 'abandoned'];

describe('CopyOrders.mayOrderBlock', () => {
  let db: RootDb;
  let cleanup: () => void;
  beforeEach(async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    db = await openStateDb(t.dir);
  });
  afterEach(async () => {
    await db.close();
    cleanup();
  });

  it('is true exactly when some copy of the block may need an order', async () => {
    const registry = new Registry(jsonSublevel(db, 'dataservers'), 60_000, Date.now());
    const blocks = new BlockMap(jsonSublevel<BlockRecord>(db, 'blocks'), registry, 0);
    for (const id of SERVERS) await registry.beat({ id, url: `http://127.0.0.1:1/${id}`, rack: '', freeBytes: 1e12, usedBytes: 0, blockSize: 1 << 20, blocks: [] }, Date.now());
    const orders = new CopyOrders({ blocks, registry, pending: { forgetBlock: async () => undefined }, log: pino({ level: 'silent' }), isLeader: () => true });
    const report = (id: number, sealed: boolean, readonly: boolean): BlockReport => ({ id, size: 10, liveCount: 1, liveBytes: 10, deletedBytes: 0, sealed, readonly, gen: 0 });

    let id = 0;
    const cases: Array<{ id: number; expected: boolean }> = [];
    for (const state of STATES) {
      for (const busy of [false, true]) {
        // copies: none; one member copy with each flag pair; a member copy and an outsider's
        for (const shape of ['none', 'member', 'member+outsider'] as const) {
          for (const flags of [[false, false], [true, false], [false, true], [true, true]] as const) {
            id++;
            await blocks.put({ id, replication: 2, state, replicas: ['ds-1', 'ds-2'], createdAt: 0 });
            if (busy) blocks.setBusy(id, 'repairing');
            if (shape !== 'none') blocks.setCopy('ds-1', report(id, flags[0], flags[1]));
            if (shape === 'member+outsider') blocks.setCopy('ds-3', report(id, true, true));
            const expected = registry.copies.holdersOf(id).some((n) => {
              const dsId = registry.servers.idOf(n);
              return orders.mayOrder(registry.copies.get(id, n)!, dsId);
            });
            cases.push({ id, expected });
          }
        }
      }
    }
    const got = cases.map((c) => ({ id: c.id, expected: orders.mayOrderBlock(c.id) }));
    expect(got).toEqual(cases);
    // both answers occur, so the comparison means something
    expect(new Set(cases.map((c) => c.expected))).toEqual(new Set([true, false]));
    expect(orders.mayOrderBlock(id + 1)).toBe(false); // no record
  });
});
