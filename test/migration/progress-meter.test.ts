// Progress while the total is still being counted: no percentage of a total that is still
// growing, and a piped run's log gets plain lines at its usual pace, not one per file. The
// final report streamed from lists spilled to disk: the same JSON and text as before.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { progressMeter, writeReport } from '../../cli/migrate/progress-meter.ts';
import type { MigrateReport, Progress } from '../../cli/migrate/migrate-run.ts';
import { ProblemList } from '../../cli/migrate/problem-list.ts';

/** `slow`: a reader with a small buffer that takes its time, so a writer meets backpressure. */
function sink(slow = false): { out: Writable; lines: () => string[]; text: () => string } {
  let text = '';
  const out = new Writable({ highWaterMark: slow ? 1024 : 16384, write(chunk, _enc, cb) { text += String(chunk); if (slow) setImmediate(cb); else cb(); } });
  return { out, lines: () => text.split('\n').filter(Boolean), text: () => text };
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

describe('final report', () => {
  it('streams long lists of skips and failures as the same JSON and text', async () => {
    const skips = new ProblemList();
    const failures = new ProblemList();
    const expectedSkips = Array.from({ length: 20_000 }, (_, i) => ({ path: `notes/${i} "q" \u00e9.txt`, reason: 'not an image type the origin serves' }));
    for (const p of expectedSkips) skips.add(p);
    failures.add({ path: 'bad\\name.jpg', reason: 'file name is not valid UTF-8' });
    const head = { dryRun: false, total: 20_001, copied: 0, updated: 0, skipped: 20_000, unchanged: 0, failed: 1, bytes: 0, seconds: 1.5, filesPerSec: 0, mbPerSec: 0 };
    const report: MigrateReport = { ...head, skips, failures };
    try {
      const json = sink(true);
      await writeReport(json.out, report, { json: true, stateFile: '/srv/.state.jsonl' });
      expect(json.text().endsWith('}\n')).toBe(true);
      expect(JSON.parse(json.text())).toEqual({ ...head, skips: expectedSkips, failures: [{ path: 'bad\\name.jpg', reason: 'file name is not valid UTF-8' }], stateFile: '/srv/.state.jsonl' });
      const empty: MigrateReport = { ...head, skips: new ProblemList(), failures: new ProblemList() };
      const dry = sink();
      await writeReport(dry.out, empty, { json: true });
      expect(JSON.parse(dry.text())).toEqual({ ...head, skips: [], failures: [] });

      const text = sink(true);
      await writeReport(text.out, report, { json: false });
      const lines = text.lines();
      expect(lines[0]).toMatch(/^20001 files: 0 copied, 20000 skipped \(0 unchanged\), 1 failed;/);
      expect(lines[1]).toBe('skipped:');
      expect(lines[2]).toBe('  notes/0 "q" \u00e9.txt: not an image type the origin serves');
      expect(lines.at(-2)).toBe('failed:');
      expect(lines.at(-1)).toBe('  bad\\name.jpg: file name is not valid UTF-8');
      expect(lines.length).toBe(20_004);
    } finally {
      skips.close();
      failures.close();
    }
  });
});
