// Starts `ugcfs server` (the all-in-one) as a real process on free loopback ports and
// reads the addresses of every role from its 'listening' line. Each role is a child process
// of it; stop() stops them all (SIGTERM, so the roles close their data) and waits until
// none is left before the temporary directory goes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';

export interface AllInOne {
  proc: Proc;
  origin: string;
  nameserver: string;
  dataservers: string[];
  dir: string;
  /** what <data>/secrets.env holds, by name (UGCFS_CLUSTER_SECRET, UGCFS_ADMIN_TOKEN, UGCFS_UPLOAD_TOKENS) */
  secrets: Record<string, string>;
  /** Authorization header of the upload token (from the environment given, else from secrets.env) */
  uploadAuth: Record<string, string>;
  /** the header that carries the cluster secret it runs with, for a test's own calls to internal routes */
  secretHeaders: Record<string, string>;
  /** UGCFS_CLUSTER_SECRET and UGCFS_ADMIN_TOKEN it runs with, for the admin CLI (run's env) */
  cliEnv: Record<string, string>;
  stop(): Promise<void>;
}

/** The pid of every process that logged a JSON line: the roles and the origin's workers, each as last seen. */
export function loggedPids(proc: Proc): Set<number> {
  const out = new Set<number>();
  for (const l of proc.lines) {
    if (l[0] !== '{') continue;
    try {
      const j = JSON.parse(l) as { pid?: unknown; name?: unknown; msg?: unknown };
      if (typeof j.pid === 'number' && j.pid !== proc.child.pid) out.add(j.pid);
    } catch {
      // a line that is not JSON names no process
    }
  }
  return out;
}

/** Whether the process `pid` still exists (a zombie counts: its parent has not reaped it). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startAllInOne(opts: { args?: string[]; env?: Record<string, string>; dir?: string } = {}): Promise<AllInOne> {
  const own = opts.dir ? undefined : tempDir('ugcfs-deploy-');
  const dir = opts.dir ?? own!.dir;
  const proc = await start(
    ['server', '--data', join(dir, 'data'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0', '--fsync=false', ...(opts.args ?? [])],
    // five processes and the origin's workers boot on a machine other suites share
    { env: opts.env, timeoutMs: 150_000 },
  );
  const line = proc.lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } }).find((l) => l?.msg === 'listening');
  const secrets = readSecretsEnv(join(dir, 'data', 'secrets.env'));
  const token = (opts.env?.UGCFS_UPLOAD_TOKENS || secrets.UGCFS_UPLOAD_TOKENS || '').split(',')[0]!;
  // What was given (environment) wins over the file, as in the server itself.
  const clusterSecret = opts.env?.UGCFS_CLUSTER_SECRET || secrets.UGCFS_CLUSTER_SECRET!;
  const adminToken = opts.env?.UGCFS_ADMIN_TOKEN || secrets.UGCFS_ADMIN_TOKEN!;
  return {
    secrets,
    uploadAuth: { authorization: `Bearer ${token}` },
    secretHeaders: { 'x-ugcfs-secret': clusterSecret },
    cliEnv: { UGCFS_CLUSTER_SECRET: clusterSecret, UGCFS_ADMIN_TOKEN: adminToken },
    proc,
    origin: proc.url,
    nameserver: String(line!.nameserver),
    dataservers: line!.dataservers as string[],
    dir,
    async stop() {
      const roles = loggedPids(proc);
      const stopped = proc.kill('SIGTERM');
      const timer = setTimeout(() => void proc.kill('SIGKILL'), 60_000);
      await stopped;
      clearTimeout(timer);
      // Killed, its roles still stop themselves (cli/role-process-guard.mjs): wait for that.
      await waitFor('the roles of ugcfs server to exit', () => [...roles].every((pid) => !alive(pid)), 60_000, 100);
      own?.cleanup();
    },
  };
}

/** The NAME=value lines of a secrets.env. */
export function readSecretsEnv(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
