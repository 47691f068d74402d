// Progress while the total is still being counted: no percentage of a total that is still
// growing, and a piped run's log gets plain lines at its usual pace, not one per file.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { progressMeter } from '../../cli/migrate/progress-meter.ts';
import type { Progress } from '../../cli/migrate/migrate-run.ts';

function sink(): { out: Writable; lines: () => string[] } {
  let text = '';
  const out = new Writable({ write(chunk, _enc, cb) { text += String(chunk); cb(); } });
  return { out, lines: () => text.split('\n').filter(Boolean) };
}

const counts = { copied: 0, updated: 0, unchanged: 0, skipped: 0, failed: 0 };
const at = (done: number, total: number, totalFinal: boolean): Progress => ({ done, total, totalFinal, bytes: 0, counts: { ...counts, copied: done } });

describe('progress meter', () => {
  it('shows a total still being counted as N+ and prints plain lines by time, then by 5 % once counted', () => {
    const { out, lines } = sink();
    const meter = progressMeter(out, 'migrate');
    // A count that grows with every file: this used to read as a new percentage each time.
    for (let i = 1; i <= 200; i++) meter.update(at(i, i + 5, false));
    expect(lines().length).toBe(1);
    expect(lines()[0]).toMatch(/^migrate 1\/6\+ \(counting\) copied 1 /);
    for (let i = 201; i <= 1000; i++) meter.update(at(i, 1000, true));
    const counted = lines().slice(1);
    expect(counted[0]).toMatch(/^migrate 201\/1000 \(20%\)/);
    expect(counted.at(-1)).toMatch(/^migrate 1000\/1000 \(100%\)/);
    // One line per 5 % step from 20 % to 100 %.
    expect(counted.length).toBe(17);
  });
});
