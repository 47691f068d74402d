// What the tests of one data-server file share: a temp dir, the `ugcfs dataserver` processes
// they start in it (standalone: the name server address is a closed port), and an afterAll
// that SIGKILLs those processes, runs the file's own teardown, then removes the dir.
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { start, tempDir, type Proc } from './proc.ts';

export interface DataserverBedOptions {
  /** the cluster secret every server gets (UGCFS_CLUSTER_SECRET); TEST_SECRET when absent */
  secret?: string;
  /** flags every server of the file gets, before the ones a start() adds */
  args?: string[];
}

export interface DataserverBed {
  /** the temp dir; a server's data lives under dir/<name> */
  dir: string;
  /** starts a data server on data dir/<name> (the same name again reopens the same data) */
  start(name: string, extra?: string[], env?: Record<string, string>): Promise<Proc>;
  /** teardown of the file's own (a proxy, a mount), run after the processes are killed and before the dir goes */
  after(fn: () => unknown): void;
  /**
   * Mounts a tmpfs of `size` (e.g. "3m") at dir/<sub>, unmounted at teardown: a disk that fills
   * up for real. False where mounting is not allowed (needs CAP_SYS_ADMIN): skip, don't fake.
   */
  tmpfs(sub: string, size: string): boolean;
}

/** Call at the top of a test file: it registers the file's afterAll. */
export function dataserverBed(prefix: string, opts: DataserverBedOptions = {}): DataserverBed {
  const tmp = tempDir(prefix);
  const procs: Proc[] = [];
  const teardown: Array<() => unknown> = [];
  afterAll(async () => {
    try {
      await Promise.all(procs.map((p) => p.kill('SIGKILL')));
      for (const fn of teardown) await fn();
    } finally {
      tmp.cleanup();
    }
  });
  const secretEnv: Record<string, string> = opts.secret === undefined ? {} : { UGCFS_CLUSTER_SECRET: opts.secret };
  return {
    dir: tmp.dir,
    async start(name, extra = [], env = {}) {
      const args = ['dataserver', '--data', join(tmp.dir, name), '--port', '0', '--nameserver', 'http://127.0.0.1:9', ...(opts.args ?? []), ...extra];
      const p = await start(args, { env: { ...secretEnv, ...env } });
      procs.push(p);
      return p;
    },
    after(fn) {
      teardown.push(fn);
    },
    tmpfs(sub, size) {
      const at = join(tmp.dir, sub);
      mkdirSync(at, { recursive: true });
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at], { stdio: 'ignore' });
      } catch {
        return false;
      }
      // Lazy: a file still open in a killed process's last moments does not block it.
      teardown.push(() => execFileSync('umount', ['-l', at], { stdio: 'ignore' }));
      return true;
    },
  };
}
