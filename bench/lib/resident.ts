// Keeping a section's files in memory, and checking that they stayed there. A section that
// claims to measure page-cache reads has to make sure the kernel does not page its files out
// mid-run: on the bench VM, DAMON reclaim pages out file pages idle for ~30 s, in regions of
// several MB, so a data server reading a uniform sample of a 1 GB block file had only a third
// of it resident and read ~100 MB from the disk in a 12-s run (measured unheld when the lock came in; see git log).
// vmtouch locks a directory's pages with mlock(2); /proc/PID/io tells what a process read
// from storage, which is the check.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Held {
  release(): Promise<void>;
}

/**
 * vmtouch daemons still holding memory. A daemon is not our child (it forks away), so the
 * bench's kill-all-children on exit or Ctrl-C would miss it and leave its pages locked.
 */
const daemons = new Map<number, string>(); // pid -> its scratch directory
let reaping = false;
function reapOnExit(pid: number, tmp: string): void {
  daemons.set(pid, tmp);
  if (reaping) return;
  reaping = true;
  process.on('exit', () => {
    for (const [d, dir] of daemons) stopDaemon(d, dir, 'SIGKILL');
  });
}

function stopDaemon(pid: number, tmp: string, signal: NodeJS.Signals): void {
  daemons.delete(pid);
  try {
    process.kill(pid, signal);
  } catch { /* already gone */ }
  rmSync(tmp, { recursive: true, force: true });
}

/**
 * Locks every file under `dir` in memory until released (`vmtouch -d -w -l`: a daemon that
 * returns once all pages are locked). Returns why not when it cannot (no vmtouch, or mlock
 * refused: non-root users are limited by `ulimit -l`).
 */
export async function holdInMemory(vmtouch: string | undefined, dir: string): Promise<Held | string> {
  if (!vmtouch) return 'vmtouch is not installed';
  const tmp = mkdtempSync(join(tmpdir(), 'ugcfs-hold-'));
  const pidFile = join(tmp, 'pid');
  // The daemon keeps the descriptors it was started with, so no pipes (waiting for them to
  // close would wait for the daemon): its messages go to a file, and the parent's exit is the
  // signal that every page is locked.
  const errFile = join(tmp, 'err');
  const err = openSync(errFile, 'w');
  const code = await new Promise<number | null>((res) => {
    const child = spawn(vmtouch, ['-d', '-w', '-l', '-q', '-P', pidFile, dir], { stdio: ['ignore', err, err] });
    child.on('error', () => res(-1));
    child.on('exit', (c) => res(c));
  });
  closeSync(err);
  let pid = Number.NaN;
  try {
    pid = Number(readFileSync(pidFile, 'utf8').trim());
  } catch { /* no pid file: the daemon did not start */ }
  // pid > 0: an empty pid file reads as 0, and kill(0) would signal our own process group
  const started = Number.isInteger(pid) && pid > 0;
  if (code !== 0 || !started) {
    if (started) process.kill(pid, 'SIGKILL');
    const why = readFileSync(errFile, 'utf8').trim().split('\n').pop();
    rmSync(tmp, { recursive: true, force: true });
    return `vmtouch -l failed (${why || `exit ${code}`})`;
  }
  reapOnExit(pid, tmp);
  return {
    async release() {
      stopDaemon(pid, tmp, 'SIGTERM');
    },
  };
}

/** Bytes process `pid` (all its threads) has caused to be read from storage; page-cache hits do not count. */
export function storageReadBytes(pid: number): number {
  const m = /^read_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return m ? Number(m[1]) : Number.NaN;
}

/**
 * What the kernel does to idle memory on its own, when it says: DAMON schemes that page
 * memory out (`pageout` action) under a running kdamond. '' when nothing is found.
 */
export function proactiveReclaim(): string {
  const root = '/sys/kernel/mm/damon/admin/kdamonds';
  const read = (p: string) => {
    try {
      return readFileSync(p, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const found: string[] = [];
  const kdamonds = Number(read(`${root}/nr_kdamonds`) || 0);
  for (let k = 0; k < kdamonds; k++) {
    if (read(`${root}/${k}/state`) !== 'on') continue;
    const contexts = Number(read(`${root}/${k}/contexts/nr_contexts`) || 0);
    for (let c = 0; c < contexts; c++) {
      const ctx = `${root}/${k}/contexts/${c}`;
      const aggrUs = Number(read(`${ctx}/monitoring_attrs/intervals/aggr_us`) || 0);
      const schemes = Number(read(`${ctx}/schemes/nr_schemes`) || 0);
      for (let s = 0; s < schemes; s++) {
        if (read(`${ctx}/schemes/${s}/action`) !== 'pageout') continue;
        const minAge = Number(read(`${ctx}/schemes/${s}/access_pattern/age/min`) || 0);
        const idleS = (minAge * aggrUs) / 1e6;
        found.push(`DAMON pageout of ${read(`${ctx}/operations`) || 'memory'} regions idle for ${idleS > 0 ? `${idleS} s` : 'a while'}`);
      }
    }
  }
  return found.join('; ');
}
