// The heartbeat schedule (dataserver/beat-schedule.ts): a grid counted from each beat's start,
// moved at random by up to BEAT_JITTER, with a rest after a slow beat. What it must prevent is
// checked as a whole too: servers whose beats a name server held up together do not stay in step.
import { describe, expect, it } from 'vitest';
import { BEAT_JITTER, BEAT_REST, nextBeatDelay } from '../../dataserver/beat-schedule.ts';

describe('the heartbeat schedule', () => {
  it('counts from the start of the last beat, within the jitter, and rests after a slow one', () => {
    // answered 300 ms after it left: the next leaves one interval after the start, not after the answer
    expect(nextBeatDelay(10_000, 10_300, 1000, () => 0.5)).toBe(700);
    expect(nextBeatDelay(10_000, 10_300, 1000, () => 0)).toBeCloseTo(700 - 1000 * BEAT_JITTER);
    expect(nextBeatDelay(10_000, 10_300, 1000, () => 1)).toBeCloseTo(700 + 1000 * BEAT_JITTER);
    // a beat that took longer than the interval: a short rest, then the next
    expect(nextBeatDelay(10_000, 12_500, 1000, () => 0.5)).toBe(1000 * BEAT_REST);
  });

  it('spreads beats that a pause bunched together, where counting from the answer keeps them in step', () => {
    // 400 servers, beats spread over the second; a 300 ms pause of the name server at t=5 s
    // holds every answer due in it until its end.
    const servers = 400;
    const interval = 1000;
    const run = (delay: (startedAt: number, answeredAt: number) => number) => {
      const next = Array.from({ length: servers }, (_, i) => (i * interval) / servers);
      const sent: number[] = [];
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < servers; i++) {
          const start = next[i]!;
          sent.push(start);
          const answered = start >= 5000 && start < 5300 ? 5300 : start + 2;
          next[i] = answered + delay(start, answered);
        }
      }
      // the most beats leaving in any 10 ms during the last 5 rounds
      const late = sent.filter((t) => t > 25_000).sort((a, b) => a - b);
      let most = 0;
      for (let a = 0, b = 0; b < late.length; b++) {
        while (late[b]! - late[a]! > 10) a++;
        most = Math.max(most, b - a + 1);
      }
      return most;
    };
    // a fixed pseudo-random sequence, so the run is the same every time
    let rnd = 99;
    const random = () => ((rnd = (rnd * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const fromAnswer = run(() => interval);
    const fromStart = run((start, answered) => nextBeatDelay(start, answered, interval, random));
    // even spreading puts 4 beats in 10 ms; counted from the answer, the 120 held up leave together for ever
    expect(fromAnswer).toBeGreaterThanOrEqual(100);
    expect(fromStart).toBeLessThan(20);
  });
});
