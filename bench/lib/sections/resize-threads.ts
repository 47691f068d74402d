// CPU per kind of thread of a serving process, from /proc: the main thread (JavaScript, the
// HTTP work, the copies), libvips' workers (the pixels) and the rest (libuv's pool, V8's GC
// helpers). Shown beside resizes/s by the images section and bench/origin-resize.ts, since a
// resize's cost splits there and a round's rate on a shared machine moves with other work.
import { readdirSync, readFileSync } from 'node:fs';

export type ThreadKind = 'main' | 'libvips' | 'other';

/** CPU ms of one thread so far (utime + stime, 100 ticks a second); NaN once it is gone. */
export function threadCpuMs(pid: number, tid: number | string): number {
  try {
    const f = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU ms so far per kind of thread of `pid` (threads that have exited are not counted). */
export function threadKindsCpuMs(pid: number): Record<ThreadKind, number> {
  const out: Record<ThreadKind, number> = { main: 0, libvips: 0, other: 0 };
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    let comm = '';
    try {
      comm = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const ms = threadCpuMs(pid, tid);
    if (!Number.isFinite(ms)) continue;
    out[tid === String(pid) ? 'main' : comm.startsWith('libvips') ? 'libvips' : 'other'] += ms;
  }
  return out;
}

/** Adds what each kind used between two readings into `sum`. */
export function addThreadKinds(sum: Record<ThreadKind, number>, before: Record<ThreadKind, number>, after: Record<ThreadKind, number>): void {
  for (const k of ['main', 'libvips', 'other'] as const) sum[k] += after[k] - before[k];
}
