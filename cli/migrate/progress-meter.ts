// Progress for long migrations on stderr: a redrawn bar on a terminal, plain lines (one per
// 5% or 5 s) otherwise, so logs of a piped run stay readable. Failures are printed as they
// happen either way; stdout is kept for the final report. The total is counted while the run
// goes on: until the count is complete it shows as "N+" with no percentage (a percentage of
// a growing total would run backwards), and plain lines come only every 5 s.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { MigrateReport, Progress } from './migrate-run.ts';
import type { Problem } from './problem-list.ts';

export interface ProgressMeter {
  update(p: Progress): void;
  finish(): void;
}

const BAR = 28;

export function progressMeter(out: Writable & { isTTY?: boolean; columns?: number }, label: string): ProgressMeter {
  const tty = out.isTTY === true;
  const startedAt = Date.now();
  let lastDraw = 0;
  let lastPct = -1;
  let last: Progress | undefined;
  let drawn = false;

  const line = (p: Progress) => {
    const pct = p.total ? Math.floor((p.done / p.total) * 100) : 100;
    const secs = (Date.now() - startedAt) / 1000;
    const rate = secs > 0 ? p.bytes / 1e6 / secs : 0;
    const c = p.counts;
    const of = p.totalFinal ? `${p.total} (${pct}%)` : `${p.total}+ (counting)`;
    return `${label} ${p.done}/${of} copied ${c.copied + c.updated} skipped ${c.skipped + c.unchanged} failed ${c.failed} ${rate.toFixed(1)} MB/s`;
  };
  const draw = (p: Progress) => {
    const frac = !p.totalFinal ? 0 : p.total ? p.done / p.total : 1;
    const filled = Math.round(frac * BAR);
    const text = `[${'#'.repeat(filled)}${'-'.repeat(BAR - filled)}] ${line(p)}`;
    out.write(`\r\x1b[2K${text.slice(0, Math.max(20, (out.columns || 120) - 1))}`);
    drawn = true;
  };

  return {
    update(p) {
      last = p;
      if (p.last?.outcome === 'failed') {
        if (tty && drawn) out.write('\r\x1b[2K');
        out.write(`${label} failed: ${p.last.label}: ${p.last.reason ?? ''}\n`);
        drawn = false;
      }
      const now = Date.now();
      if (tty) {
        if (now - lastDraw >= 100 || (p.totalFinal && p.done === p.total)) {
          lastDraw = now;
          draw(p);
        }
        return;
      }
      const pct = !p.totalFinal ? lastPct : p.total ? Math.floor((p.done / p.total) * 20) : 20;
      if (pct !== lastPct || now - lastDraw >= 5000 || (p.totalFinal && p.done === p.total)) {
        lastPct = pct;
        lastDraw = now;
        out.write(line(p) + '\n');
      }
    },
    finish() {
      if (tty && last) {
        draw(last);
        out.write('\n');
      }
    },
  };
}

/**
 * Writes the final report to `out`, human or JSON (`stateFile` added to the JSON), streaming
 * the lists of skips and failures from disk in chunks that respect the stream's backpressure.
 */
export async function writeReport(out: Writable, r: MigrateReport, opts: { json: boolean; stateFile?: string }): Promise<void> {
  let chunk = '';
  const put = async (s: string) => {
    chunk += s;
    if (chunk.length < 65536) return;
    const full = chunk;
    chunk = '';
    if (!out.write(full)) await once(out, 'drain');
  };
  const list = async (l: MigrateReport['skips'], each: (p: Problem, first: boolean) => string) => {
    let first = true;
    for await (const p of l.entries()) {
      await put(each(p, first));
      first = false;
    }
  };
  const { skips, failures, ...head } = r;
  if (opts.json) {
    // The same object as JSON.stringify({...report, stateFile}) gives, written piece by piece.
    await put(JSON.stringify(head).slice(0, -1) + ',"skips":[');
    await list(skips, (p, first) => (first ? '' : ',') + JSON.stringify(p));
    await put('],"failures":[');
    await list(failures, (p, first) => (first ? '' : ',') + JSON.stringify(p));
    await put(']' + (opts.stateFile !== undefined ? `,"stateFile":${JSON.stringify(opts.stateFile)}` : '') + '}\n');
  } else {
    const verb = r.dryRun ? 'would copy' : 'copied';
    await put(
      `${r.dryRun ? 'dry run: ' : ''}${r.total} files: ${r.copied} ${verb}${r.updated ? ` (${r.updated} changed since last run)` : ''}, ${r.skipped} skipped (${r.unchanged} unchanged), ${r.failed} failed; ` +
        `${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s (${r.filesPerSec} files/s, ${r.mbPerSec} MB/s)\n`,
    );
    if (skips.count) await put('skipped:\n');
    await list(skips, (p) => `  ${p.path}: ${p.reason}\n`);
    if (failures.count) await put('failed:\n');
    await list(failures, (p) => `  ${p.path}: ${p.reason}\n`);
  }
  if (chunk && !out.write(chunk)) await once(out, 'drain');
}
