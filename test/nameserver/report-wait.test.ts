// Repair's wait for the block reports after a start or an election (nameserver/report-wait.ts).
import { describe, expect, it } from 'vitest';
import { ReportWait } from '../../nameserver/report-wait.ts';

describe('the wait for block reports before repair', () => {
  const make = (pending: { now: boolean }, ended: Array<[number, boolean]> = []) =>
    new ReportWait({ startedAt: 1000, graceMs: 3000, deadAfterMs: 2000, maxMs: 60_000, pending: () => pending.now, ended: (ms, t) => void ended.push([ms, t]) });

  it('holds through the grace and the dead time, then while a live server has not reported whole', () => {
    const pending = { now: false };
    const ended: Array<[number, boolean]> = [];
    const w = make(pending, ended);
    expect(w.held(3999)).toBe(true); // start-up grace
    pending.now = true;
    expect(w.held(4000)).toBe(true); // a server's report is not in
    expect(w.held(30_000)).toBe(true);
    pending.now = false;
    expect(w.held(30_001)).toBe(false);
    expect(ended).toEqual([[29_001, false]]);
    // over for this term: a server restarting later does not hold everything again
    pending.now = true;
    expect(w.held(30_002)).toBe(false);
    expect(ended).toHaveLength(1);
  });

  it('gives up at --report-wait-ms, and says so', () => {
    const pending = { now: true };
    const ended: Array<[number, boolean]> = [];
    const w = make(pending, ended);
    expect(w.held(60_999)).toBe(true);
    expect(w.held(61_000)).toBe(false);
    expect(ended).toEqual([[60_000, true]]);
  });

  it('starts again on an election, waiting the dead time before trusting "every live server"', () => {
    const pending = { now: false };
    const w = make(pending);
    expect(w.held(5000)).toBe(false);
    w.restart(100_000);
    expect(w.held(101_999)).toBe(true); // servers that beat the old leader may not have beaten yet
    pending.now = true;
    expect(w.held(102_000)).toBe(true);
    pending.now = false;
    expect(w.held(102_001)).toBe(false);
  });
});
