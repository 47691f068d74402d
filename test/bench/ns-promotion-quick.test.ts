// Smoke check of the name-server promotion bench (bench/ns-promotion.ts --quick): a real etcd
// member, two real name servers on it and 20 simulated data servers beating both. The standby
// has every server's reports before the kill (the simulator keeps one session per name
// server); after the SIGKILL of the leader it is elected, answers assigns, and every server
// sends it a full report. Figures are the bench's business; here only that each was produced
// and that the order of events holds.
import { describe, expect, it } from 'vitest';
import { parseExternalLines } from '../../bench/lib/results.ts';
import { etcdUsable } from '../helpers/etcd.ts';
import { runBenchScript } from './run-script.ts';

describe.skipIf(etcdUsable())('bench/ns-promotion.ts --quick', () => {
  it('promotes the standby and measures every figure', async () => {
    const r = await runBenchScript('ns-promotion.ts', ['--quick']);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const lines = new Map(parseExternalLines(r.stdout).map((l) => [l.metric, l]));
    for (const m of ['etcd_seed', 'standby_load', 'reports_in_both', 'promotion_elected', 'promotion_first_assign', 'promotion_reports_in', 'promotion_assign_worst']) {
      expect(Number.isFinite(lines.get(m)?.value), `${m}: ${JSON.stringify(lines.get(m))}`).toBe(true);
    }
    // nobody leads before the lease of the dead leader runs out; the new leader answers once elected
    const elected = lines.get('promotion_elected')!.value;
    expect(elected).toBeGreaterThanOrEqual(1000);
    expect(lines.get('promotion_first_assign')!.value).toBeGreaterThanOrEqual(elected - 500);
    // every one of the 20 servers sent the new leader a full report, given the turn
    const reports = lines.get('promotion_reports_in')!;
    expect(reports.fullReportsDone).toBeGreaterThanOrEqual(20);
    expect(reports.turnsGiven).toBeGreaterThanOrEqual(20);
    // beats to the dead leader failed, as a real data server's do
    expect(reports.failedBeats).toBeGreaterThan(0);
    // the client's assigns went on through the kill (how many failed is a figure, not a rule)
    expect(lines.get('promotion_assign_worst')!.assigns).toBeGreaterThan(0);
  }, 300_000);
});
