// Smoke check of the name-server scale bench (bench/ns-scale.ts --quick): a real name server
// and 20 simulated data servers speaking the block-report protocol end to end. The servers
// register, their 100,000 copies are reported after a restart (each server asking for the turn
// first, as data servers do), assigns are answered, and one
// server that stops beating is declared dead no sooner than the dead time and has a repair
// started. Figures are the bench's business; here only that each was produced.
import { describe, expect, it } from 'vitest';
import { parseExternalLines } from '../../bench/lib/results.ts';
import { runBenchScript } from './run-script.ts';

describe('bench/ns-scale.ts --quick', () => {
  it('measures every figure against a real name server', async () => {
    const r = await runBenchScript('ns-scale.ts', ['--quick', '--steady-s', '2', '--assign-s', '2']);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const lines = new Map(parseExternalLines(r.stdout).map((l) => [l.metric, l]));
    for (const m of ['ns_cpu_no_blocks', 'restart_listening', 'restart_first_assign', 'restart_reports_in', 'restart_assign_worst', 'ns_cpu_heartbeats', 'memory_per_block', 'assign_p99', 'dead_detected', 'repair_started']) {
      expect(Number.isFinite(lines.get(m)?.value), `${m}: ${JSON.stringify(lines.get(m))}`).toBe(true);
    }
    // the simulated servers spoke the report protocol, and nothing fell back to whole lists
    expect(lines.get('ns_cpu_heartbeats')!.protocol).toBe('report');
    expect(lines.get('restart_reports_in')!.fullPages).toBeGreaterThanOrEqual(20);
    // after the restart every server asked for the turn before sending its full report, and every one was given it
    expect(lines.get('restart_reports_in')!.asks).toBeGreaterThanOrEqual(20);
    expect(lines.get('restart_reports_in')!.turnsGiven).toBeGreaterThanOrEqual(20);
    expect(lines.get('restart_reports_in')!.fullReportsDone).toBeGreaterThanOrEqual(20);
    expect(lines.get('assign_p99')!.errors).toBe(0);
    // dead only once silent for the dead time (5 s by default), and its repair after that
    expect(lines.get('dead_detected')!.value).toBeGreaterThanOrEqual(5000);
    expect(lines.get('repair_started')!.value).toBeGreaterThanOrEqual(5000);
  }, 180_000);
});
