// A real ugcfs cluster for tests: one name server and N data servers, each its own
// `ugcfs` process on loopback, with their own data directories under one temp dir, and a
// ClusterClient pointed at it. Timings default to short values so deaths are noticed and
// repaired within seconds. Used by the name-server, origin, ops, migration and fault tests.
//
//   const c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2 });
//   const { fid } = await c.client.write(buf, { mime: 'image/jpeg' });
//   await c.killDataserver(0);                  // SIGKILL
//   await c.waitFor((s) => s.underReplicatedBlocks === 0);
//   await c.stop();                             // in afterAll
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { ClusterClient } from '../../src/cluster-client.ts';
import type { ClusterStatus } from '../../src/protocol.ts';
import { start, tempDir, waitFor, type Proc, type RunResult, run } from './proc.ts';
import { freePort } from './ready-process.ts';

export interface ClusterOptions {
  /** data servers to start (default 3) */
  dataservers?: number;
  /** rack of each data server, by index, cycled (default ['a', 'b', 'c']); [] or [''] for no racks */
  racks?: string[];
  /** the name server's --replicas (default 2) */
  replicas?: number;
  /** data servers' --block-size in bytes (default 1 MiB) */
  blockSize?: number;
  /** heartbeat interval, ms, for both roles (default 100) */
  heartbeatMs?: number;
  /** name server --dead-after-ms (default 1500: a loaded 2-core machine delays heartbeats) */
  deadAfterMs?: number;
  /** name server --repair-delay-ms (default 500) */
  repairDelayMs?: number;
  /** name server --startup-grace-ms (default 1000) */
  startupGraceMs?: number;
  /** data servers' --fsync (default false: tests are about logic; the storage tests cover fsync) */
  fsync?: boolean;
  /** cluster secret (default: random per cluster; '' runs without one) */
  secret?: string;
  /** admin token given to the name server (default none) */
  adminToken?: string;
  /** extra flags for the name server / every data server */
  nameserverArgs?: string[];
  dataserverArgs?: string[];
  /** extra environment for every process */
  env?: Record<string, string>;
  /** where every role's data goes (default: a new temp dir, removed by stop()); left in place by stop() */
  dir?: string;
}

export interface Cluster {
  nameserver: Proc;
  /** by index; a killed one stays in place (its `child` has exited) until restarted */
  dataservers: Proc[];
  /** data server ids, by index: ds-1, ds-2, ... */
  dsIds: string[];
  /** temp dir holding every role's data (removed by stop()) */
  dir: string;
  secret: string;
  client: ClusterClient;
  /** environment for `run(['status', ...], { env: cluster.env })`: UGCFS_NAMESERVER and the secrets */
  env: Record<string, string>;
  /** runs an admin command (`ugcfs <args>`) against this cluster */
  cli(args: string[], opts?: { env?: Record<string, string>; input?: string; timeoutMs?: number }): Promise<RunResult>;
  status(): Promise<ClusterStatus>;
  /** waits until the status satisfies `pred` (default timeout 30 s) */
  waitFor(pred: (s: ClusterStatus) => boolean, what?: string, timeoutMs?: number): Promise<ClusterStatus>;
  /** waits until every started data server is alive */
  waitForAlive(timeoutMs?: number): Promise<ClusterStatus>;
  killDataserver(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** starts data server i again on its own data dir (same id, new port) */
  restartDataserver(i: number): Promise<Proc>;
  /** starts one more data server; returns its index */
  addDataserver(opts?: { rack?: string }): Promise<number>;
  killNameserver(signal?: NodeJS.Signals): Promise<void>;
  /** starts the name server again on the same port and data dir (extra flags for this start only) */
  restartNameserver(extraArgs?: string[]): Promise<Proc>;
  /** kills every process (SIGKILL) and removes the temp dir */
  stop(): Promise<void>;
}

// A shared 2-core machine under load can take long to spawn a process through tsx.
const START_TIMEOUT_MS = 45_000;

export { freePort };

/** GET on the name server with the cluster secret; anything but 200 throws, with the body. */
export async function nsGet<T>(c: Cluster, path: string): Promise<T> {
  const res = await fetch(c.nameserver.url + path, { headers: { 'x-ugcfs-secret': c.secret } });
  if (res.status !== 200) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/**
 * Writes `count` random files, `batch` at a time, into `files` (fid -> bytes). Sizes run
 * 1000..3999 bytes, stepped by `spread`, so small blocks fill unevenly.
 */
export async function writeRandomFiles(c: Cluster, files: Map<string, Buffer>, opts: { count: number; batch: number; spread: number }): Promise<void> {
  for (let i = 0; i < opts.count; i += opts.batch) {
    const batch = Array.from({ length: opts.batch }, (_, j) => randomBytes(1000 + (((i + j) * opts.spread) % 3000)));
    const written = await Promise.all(batch.map((data) => c.client.write(data, { mime: 'application/octet-stream' })));
    written.forEach((w, j) => files.set(w.fid, batch[j]!));
  }
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const n = opts.dataservers ?? 3;
  const racks = opts.racks ?? ['a', 'b', 'c'];
  const heartbeatMs = opts.heartbeatMs ?? 100;
  const secret = opts.secret ?? randomBytes(12).toString('hex');
  const { dir, cleanup } = opts.dir === undefined ? tempDir('ugcfs-cluster-') : { dir: opts.dir, cleanup: () => {} };
  const port = await freePort();
  const nsUrl = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    // 'info' at least: readiness is the "listening" info line
    UGCFS_LOG_LEVEL: process.env.UGCFS_LOG_LEVEL ?? 'info',
    ...(opts.env ?? {}),
    UGCFS_CLUSTER_SECRET: secret,
  };
  const cliEnv: Record<string, string> = { UGCFS_NAMESERVER: nsUrl, UGCFS_CLUSTER_SECRET: secret, ...(opts.adminToken ? { UGCFS_ADMIN_TOKEN: opts.adminToken } : {}) };

  const nsArgs = [
    'nameserver',
    '--data', join(dir, 'ns'),
    '--port', String(port),
    '--replicas', String(opts.replicas ?? 2),
    '--heartbeat-ms', String(heartbeatMs),
    '--dead-after-ms', String(opts.deadAfterMs ?? 1500),
    '--repair-delay-ms', String(opts.repairDelayMs ?? 500),
    '--startup-grace-ms', String(opts.startupGraceMs ?? 1000),
    ...(opts.nameserverArgs ?? []),
  ];
  const nsEnv = { ...env, ...(opts.adminToken ? { UGCFS_ADMIN_TOKEN: opts.adminToken } : {}) };
  const dsArgs = (i: number, rack: string) => [
    'dataserver',
    '--data', join(dir, `ds-${i + 1}`),
    '--id', `ds-${i + 1}`,
    '--nameserver', nsUrl,
    '--port', '0',
    '--rack', rack,
    '--block-size', String(opts.blockSize ?? 1024 * 1024),
    '--heartbeat-ms', String(heartbeatMs),
    `--fsync=${opts.fsync ?? false}`,
    ...(opts.dataserverArgs ?? []),
  ];
  const rackOf = (i: number) => (racks.length === 0 ? '' : racks[i % racks.length]!);

  const procs: Proc[] = [];
  const dsArgList: string[][] = [];
  let nameserver: Proc | undefined;
  const client = new ClusterClient({ nameserver: nsUrl, secret, timeoutMs: 5000, locationTtlMs: 2000 });

  const cluster: Cluster = {
    get nameserver() {
      return nameserver!;
    },
    dataservers: procs,
    dsIds: [],
    dir,
    secret,
    client,
    env: cliEnv,
    cli: (args, o = {}) => run(args, { env: { ...cliEnv, ...(o.env ?? {}) }, input: o.input, timeoutMs: o.timeoutMs }),
    status: () => client.status(),
    waitFor: (pred, what = 'cluster status', timeoutMs = 30_000) =>
      waitFor(what, async () => {
        const s = await client.status();
        return pred(s) ? s : undefined;
      }, timeoutMs, 100),
    waitForAlive: (timeoutMs = 30_000) =>
      cluster.waitFor(
        (s) => cluster.dsIds.every((id, i) => procs[i]!.child.exitCode !== null || procs[i]!.child.signalCode !== null || s.dataservers.some((d) => d.id === id && d.alive)),
        'every data server alive',
        timeoutMs,
      ),
    async killDataserver(i, signal = 'SIGKILL') {
      await procs[i]!.kill(signal);
    },
    async restartDataserver(i) {
      await procs[i]!.kill('SIGKILL');
      procs[i] = await start(dsArgList[i]!, { env, timeoutMs: START_TIMEOUT_MS });
      return procs[i]!;
    },
    async addDataserver(o = {}) {
      const i = procs.length;
      dsArgList[i] = dsArgs(i, o.rack ?? rackOf(i));
      procs[i] = await start(dsArgList[i]!, { env, timeoutMs: START_TIMEOUT_MS });
      cluster.dsIds[i] = `ds-${i + 1}`;
      return i;
    },
    async killNameserver(signal = 'SIGKILL') {
      await nameserver?.kill(signal);
    },
    async restartNameserver(extraArgs = []) {
      await nameserver?.kill('SIGKILL');
      nameserver = await start([...nsArgs, ...extraArgs], { env: nsEnv, timeoutMs: START_TIMEOUT_MS });
      return nameserver;
    },
    async stop() {
      await Promise.all([...procs.map((p) => p.kill('SIGKILL')), nameserver?.kill('SIGKILL')]);
      await client.close();
      cleanup();
    },
  };

  try {
    nameserver = await start(nsArgs, { env: nsEnv, timeoutMs: START_TIMEOUT_MS });
    for (let i = 0; i < n; i++) dsArgList[i] = dsArgs(i, rackOf(i));
    const started = await Promise.all(dsArgList.map((a) => start(a, { env, timeoutMs: START_TIMEOUT_MS })));
    procs.push(...started);
    cluster.dsIds.push(...started.map((_, i) => `ds-${i + 1}`));
    await cluster.waitForAlive();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
