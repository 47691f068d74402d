// Full-report pages applied one at a time, in short slices (nameserver/page-pacer.ts).
import { describe, expect, it } from 'vitest';
import { PagePacer } from '../../nameserver/page-pacer.ts';

const busy = (ms: number) => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('the page pacer', () => {
  it('runs one job at a time, in the order given, a failed one not stopping the next', async () => {
    const pacer = new PagePacer(5);
    const log: string[] = [];
    const job = (name: string, fail = false) => async (pause: () => Promise<void> | undefined) => {
      log.push(`${name} start`);
      for (let i = 0; i < 4; i++) {
        busy(3);
        await pause();
      }
      log.push(`${name} end`);
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([pacer.run(job('a')), pacer.run(job('b', true)), pacer.run(job('c'))]);
    expect(log).toEqual(['a start', 'a end', 'b start', 'b end', 'c start', 'c end']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });

  it('lets other work run between slices of a long job', async () => {
    const pacer = new PagePacer(5);
    let ticks = 0;
    let stop = false;
    const other = () => {
      ticks++;
      if (!stop) setImmediate(other);
    };
    setImmediate(other);
    let slicesSeen = 0;
    await pacer.run(async (pause) => {
      for (let i = 0; i < 200; i++) {
        busy(0.2); // 40 ms of work in all
        const before = ticks;
        const p = pause();
        if (p) {
          await p;
          if (ticks > before) slicesSeen++;
        }
      }
    });
    stop = true;
    // 40 ms in 5 ms slices: several pauses, each letting the other work in; none every 0.2 ms
    expect(slicesSeen).toBeGreaterThanOrEqual(3);
    expect(slicesSeen).toBeLessThan(100);
  });
});
