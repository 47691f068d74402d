// Starts `ugcfs server` (the all-in-one) as a real process on free loopback ports and
// reads the addresses of every role from its 'listening' line.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { start, tempDir, type Proc } from '../helpers/proc.ts';

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

export async function startAllInOne(opts: { args?: string[]; env?: Record<string, string>; dir?: string } = {}): Promise<AllInOne> {
  const own = opts.dir ? undefined : tempDir('ugcfs-deploy-');
  const dir = opts.dir ?? own!.dir;
  const proc = await start(
    ['server', '--data', join(dir, 'data'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0', '--fsync=false', ...(opts.args ?? [])],
    { env: opts.env, timeoutMs: 60_000 },
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
      await proc.kill('SIGKILL');
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
