// CPU time a process has used, read from /proc. CPU per request is far steadier than
// requests per second on a shared machine, and on 2 cores it is what bounds throughput.
import { readFileSync } from 'node:fs';

/** Fields of /proc/<pid>/stat after the parenthesised command name (field 3 is [0]). */
function statFields(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  } catch {
    return undefined;
  }
}

/** User + system CPU of every thread of `pid` so far, in ms (Linux; NaN elsewhere). */
export function processCpuMs(pid: number): number {
  // utime and stime are the 14th and 15th fields, in clock ticks (100 per second on Linux)
  const f = statFields(pid);
  return f ? ((Number(f[11]) + Number(f[12])) * 1000) / 100 : Number.NaN;
}

/**
 * Major page faults of `pid` so far (12th field): each waited for a disk read. Code and
 * files the kernel dropped from memory fault back in this way; a thread stalls meanwhile.
 */
export function processMajorFaults(pid: number): number {
  const f = statFields(pid);
  return f ? Number(f[9]) : Number.NaN;
}
