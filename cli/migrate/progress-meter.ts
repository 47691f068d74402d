// Progress for long migrations on stderr: a redrawn bar on a terminal, plain lines (one per
// 5% or 5 s) otherwise, so logs of a piped run stay readable. Failures are printed as they
// happen either way; stdout is kept for the final report. The total is counted while the run
// goes on: until the count is complete it shows as "N+" with no percentage (a percentage of
// a growing total would run backwards), and plain lines come only every 5 s.
import type { Writable } from 'node:stream';
import type { MigrateReport, Progress } from './migrate-run.ts';

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

/** The human form of the final report. */
export function formatReport(r: MigrateReport): string {
  const verb = r.dryRun ? 'would copy' : 'copied';
  const lines = [
    `${r.dryRun ? 'dry run: ' : ''}${r.total} files: ${r.copied} ${verb}${r.updated ? ` (${r.updated} changed since last run)` : ''}, ${r.skipped} skipped (${r.unchanged} unchanged), ${r.failed} failed; ` +
      `${(r.bytes / 1e6).toFixed(1)} MB in ${r.seconds.toFixed(1)} s (${r.filesPerSec} files/s, ${r.mbPerSec} MB/s)`,
  ];
  if (r.skips.length) {
    lines.push('skipped:');
    for (const s of r.skips) lines.push(`  ${s.path}: ${s.reason}`);
  }
  if (r.failures.length) {
    lines.push('failed:');
    for (const f of r.failures) lines.push(`  ${f.path}: ${f.reason}`);
  }
  return lines.join('\n') + '\n';
}
