// The block sweep walks a slice per tick in goes of a few ms (nameserver/block-sweep.ts).
import { describe, expect, it } from 'vitest';
import { BlockSweep } from '../../nameserver/block-sweep.ts';
import { pino } from 'pino';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

/** `n` blocks with ids 1..n; refreshing one costs `costMs` of CPU. */
function fakeBlocks(n: number, costMs: number) {
  const refreshed: number[] = [];
  return {
    refreshed,
    idsFrom: (from: number, limit: number) => {
      const out: number[] = [];
      for (let id = Math.max(1, from); id <= n && out.length < limit; id++) out.push(id);
      return out;
    },
    refresh: (id: number) => {
      busy(costMs);
      refreshed.push(id);
    },
  };
}

const until = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setImmediate(r));
};

describe('the block sweep', () => {
  it('looks at every block once per pass, a slice per tick, and on the leader decides orders for each that may need one', async () => {
    const blocks = fakeBlocks(250, 0);
    const evaluated: number[] = [];
    const sweep = new BlockSweep(blocks, { evaluateBlock: async (id) => void evaluated.push(id), mayOrderBlock: (id) => id % 3 !== 0 }, pino({ level: 'silent' }), 100);
    for (let t = 0; t < 3; t++) {
      sweep.tick(true);
      await until(() => !sweep.busy);
    }
    expect(blocks.refreshed).toEqual(Array.from({ length: 250 }, (_, i) => i + 1));
    expect(evaluated).toEqual(blocks.refreshed.filter((id) => id % 3 !== 0));
    expect(sweep.passes).toBe(1);
    // a standby re-counts but orders nothing
    sweep.tick(false);
    await until(() => !sweep.busy);
    expect(blocks.refreshed.slice(250)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(evaluated).toHaveLength(167);
  });

  it('lets the loop run other work between goes, and a tick during a walk skips', async () => {
    const blocks = fakeBlocks(400, 0.05); // a slice of 400 blocks: ~20 ms of work
    const sweep = new BlockSweep(blocks, { evaluateBlock: async () => {}, mayOrderBlock: () => true }, pino({ level: 'silent' }), 400, 2);
    /** how far the walk had got each time the other work ran */
    const seen: number[] = [];
    let stop = false;
    const other = () => {
      seen.push(blocks.refreshed.length);
      if (!stop) setImmediate(other);
    };
    setImmediate(other);
    sweep.tick(true);
    sweep.tick(true); // still walking: skipped
    await until(() => !sweep.busy);
    stop = true;
    expect(blocks.refreshed).toHaveLength(400);
    // the other work ran several times in the middle of the walk, not only before and after it
    const during = new Set(seen.filter((n) => n > 0 && n < 400));
    expect(during.size).toBeGreaterThan(3);
  });
});
