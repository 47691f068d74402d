// CPU time a process has used, read from /proc. CPU per request is far steadier than
// requests per second on a shared machine, and on 2 cores it is what bounds throughput.
import { readFileSync } from 'node:fs';

/** User + system CPU of every thread of `pid` so far, in ms (Linux; NaN elsewhere). */
export function processCpuMs(pid: number): number {
  try {
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th,
    // in clock ticks (100 per second on Linux).
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}
