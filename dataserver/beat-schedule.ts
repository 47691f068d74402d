// When a data server's next heartbeat to a name server leaves. Beats keep a grid of the
// interval counted from each beat's start, not from its answer: counted from the answer, every
// beat that a name server held up (a pause, a burst of work) left again at the same moment one
// interval later, so the servers' beats fell into step and reached the name server in bursts,
// which assigns then waited behind. Each beat also moves by up to BEAT_JITTER of the interval
// at random, so beats that did bunch (a name server that was down for a while) spread out again.
// A beat slower than the interval is followed after a short rest, not at once.

/** how far a beat may move from the grid, as a share of the interval */
export const BEAT_JITTER = 0.1;
/** the least time between a beat's answer and the next beat, as a share of the interval */
export const BEAT_REST = 0.25;

/** ms from `now` until the next beat, the last one having left at `startedAt`. */
export function nextBeatDelay(startedAt: number, now: number, intervalMs: number, random: () => number = Math.random): number {
  const due = startedAt + intervalMs * (1 + BEAT_JITTER * (2 * random() - 1));
  return Math.max(intervalMs * BEAT_REST, due - now);
}
