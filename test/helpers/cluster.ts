// The one harness that starts a real ugcfs cluster, for tests and benchmarks alike: one name
// server, N data servers and optionally an origin, each its own `ugcfs` process on loopback,
// with their own data directories under one directory, and a ClusterClient pointed at it.
//
// Two tunings. 'test' (the default) gives short timings so deaths are noticed and repaired
// within seconds, small blocks, no fsync, a random secret, and stop() SIGKILLs everything.
// 'server' passes only the flags asked for, so every role runs with its own defaults as
// users start it, and stop() is a SIGTERM (which also lets node --cpu-prof write its file):
// the benchmarks measure that (bench/lib/cluster.ts). Both start the same commands otherwise.
//
//   const c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2 });
//   const { fid } = await c.client.write(buf, { mime: 'image/jpeg' });
//   await c.killDataserver(0);                  // SIGKILL
//   await c.waitFor((s) => s.underReplicatedBlocks === 0);
//   await c.stop();                             // in afterAll
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import type { ClusterStatus } from '../../src/wire/protocol.ts';
import { BIN, NODE_FLAGS, ROOT, tempDir, waitFor, withTestSecret, type Proc, type RunResult, run } from './proc.ts';
import { freePort, startReady } from './ready-process.ts';

/** A started process: what tests read (test/helpers/proc.ts's Proc) plus its pid and a graceful stop. */
export interface RoleProcess extends Proc {
  pid: number;
  /** SIGTERM first (graceful, lets --cpu-prof write its file), SIGKILL after graceMs */
  stop(graceMs?: number): Promise<void>;
}

export interface ProcessOptions {
  env?: Record<string, string | undefined>;
  /** node flags before the script (profiling) */
  nodeFlags?: string[];
  timeoutMs?: number;
  /** resolve when a log line matches this instead of "listening" */
  ready?: (line: Record<string, unknown>) => boolean;
  cwd?: string;
  /** output lines kept in `lines` (default: all) */
  maxLines?: number;
}

// A shared 2-core machine under load can take long to spawn a process through tsx.
const START_TIMEOUT_MS = 45_000;
const QUIET_LEVELS = ['fatal', 'error', 'warn', 'silent'];

/** Starts `node [nodeFlags] file args` and resolves once it logs {"msg":"listening","url"}. */
export async function startProcess(file: string, args: string[], opts: ProcessOptions = {}): Promise<RoleProcess> {
  const base = { ...process.env, UGCFS_LOG_LEVEL: process.env.UGCFS_LOG_LEVEL ?? 'info', ...opts.env };
  const env = file === BIN ? withTestSecret(args, base) : base;
  // Readiness is the info-level "listening" line: a quieter level would hang the start.
  if (QUIET_LEVELS.includes(env.UGCFS_LOG_LEVEL ?? '')) env.UGCFS_LOG_LEVEL = 'info';
  const label = file === BIN ? `ugcfs ${args.join(' ')}` : `${file} ${args.join(' ')}`;
  const { child, lines, exited, url } = await startReady([...(opts.nodeFlags ?? []), file, ...args], {
    cwd: opts.cwd ?? ROOT,
    env,
    label,
    timeoutMs: opts.timeoutMs ?? START_TIMEOUT_MS,
    ready: opts.ready,
    maxLines: opts.maxLines,
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    url,
    pid: child.pid!,
    child,
    lines,
    args,
    exited,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => {
      if (running()) child.kill(signal);
      return exited;
    },
    stop: async (graceMs = 10_000) => {
      if (!running()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Starts a ugcfs role the way users do, `ugcfs <role> ...`, with the node flags of the bin's shebang. */
export function startRole(args: string[], opts: ProcessOptions = {}): Promise<RoleProcess> {
  return startProcess(BIN, args, { ...opts, nodeFlags: [...NODE_FLAGS, ...(opts.nodeFlags ?? [])] });
}

export interface ClusterOptions {
  /** data servers to start (default 3) */
  dataservers?: number;
  /** rack of each data server, by index, cycled (default ['a', 'b', 'c']); [] or [''] for no racks */
  racks?: string[];
  /** the name server's --replicas (default 2) */
  replicas?: number;
  /** 'test' (default): the short timings below; 'server': only the flags given, each role's own defaults otherwise */
  tuning?: 'test' | 'server';
  /** data servers' --block-size in bytes (test default 1 MiB) */
  blockSize?: number;
  /** heartbeat interval, ms, for both roles (test default 100) */
  heartbeatMs?: number;
  /** name server --dead-after-ms (test default 1500: a loaded 2-core machine delays heartbeats) */
  deadAfterMs?: number;
  /** name server --repair-delay-ms (test default 500) */
  repairDelayMs?: number;
  /** name server --startup-grace-ms (test default 1000) */
  startupGraceMs?: number;
  /** data servers' --fsync (test default false: tests are about logic; the storage tests cover fsync) */
  fsync?: boolean;
  /** cluster secret (default: random per cluster) */
  secret?: string;
  /** admin token given to the name server (default none) */
  adminToken?: string;
  /** extra flags for the name server / every data server / the origin */
  nameserverArgs?: string[];
  dataserverArgs?: string[];
  /** start an origin too, once every data server is alive */
  origin?: boolean;
  originArgs?: string[];
  /** node flags per role (profiling) */
  nodeFlags?: { nameserver?: string[]; dataserver?: string[]; origin?: string[] };
  /** extra environment for every process */
  env?: Record<string, string>;
  /** where every role's data goes (default: a new temp dir, removed by stop()); left in place by stop() */
  dir?: string;
}

/** A started cluster; its processes are RoleProcesses, typed as Proc where tests add their own. */
export interface Cluster<P extends Proc = Proc> {
  nameserver: P;
  /** by index; a killed one stays in place (its `child` has exited) until restarted */
  dataservers: P[];
  origin?: P;
  /** data server ids, by index: ds-1, ds-2, ... */
  dsIds: string[];
  /** data server data directories, by index */
  dsDirs: string[];
  /** directory holding every role's data */
  dir: string;
  secret: string;
  /** the upload token the cluster's origin takes (UGCFS_UPLOAD_TOKENS, unless opts.env names its own) */
  uploadToken: string;
  client: ClusterClient;
  /** environment for `run(['status', ...], { env: cluster.env })`: UGCFS_NAMESERVER and the secrets */
  env: Record<string, string>;
  /** the commands that started the cluster, as a reader would type them */
  commands: string[];
  /** runs an admin command (`ugcfs <args>`) against this cluster */
  cli(args: string[], opts?: { env?: Record<string, string>; input?: string; timeoutMs?: number }): Promise<RunResult>;
  status(): Promise<ClusterStatus>;
  /** waits until the status satisfies `pred` (default timeout 30 s) */
  waitFor(pred: (s: ClusterStatus) => boolean, what?: string, timeoutMs?: number): Promise<ClusterStatus>;
  /** waits until every started data server is alive */
  waitForAlive(timeoutMs?: number): Promise<ClusterStatus>;
  killDataserver(i: number, signal?: NodeJS.Signals): Promise<void>;
  /** starts data server i again on its own data dir (same id, new port) */
  restartDataserver(i: number): Promise<P>;
  /** starts one more data server; returns its index */
  addDataserver(opts?: { rack?: string }): Promise<number>;
  killNameserver(signal?: NodeJS.Signals): Promise<void>;
  /** starts the name server again on the same port and data dir (extra flags for this start only) */
  restartNameserver(extraArgs?: string[]): Promise<P>;
  /** 'test': kills every process (SIGKILL); 'server': SIGTERM, origin and data servers first. Removes a temp dir it made. */
  stop(): Promise<void>;
}

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

/** `[flag, value]` when the value is set, else nothing. */
const flag = (name: string, value: number | undefined): string[] => (value === undefined ? [] : [name, String(value)]);

/** 'server' tuning: the processes are typed with their pid and graceful stop(), which that tuning's stop() uses. */
export function startCluster(opts: ClusterOptions & { tuning: 'server' }): Promise<Cluster<RoleProcess>>;
export function startCluster(opts?: ClusterOptions): Promise<Cluster>;
export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster<RoleProcess>> {
  const n = opts.dataservers ?? 3;
  const racks = opts.racks ?? ['a', 'b', 'c'];
  const test = (opts.tuning ?? 'test') === 'test';
  // Under 'test' an option not given takes its short test value; under 'server' it is left to the role.
  const t = <T>(value: T | undefined, testValue: T): T | undefined => value ?? (test ? testValue : undefined);
  const heartbeatMs = t(opts.heartbeatMs, 100);
  const fsync = t(opts.fsync, false);
  const secret = opts.secret ?? randomBytes(24).toString('hex');
  const uploadToken = opts.env?.UGCFS_UPLOAD_TOKENS?.split(',')[0] ?? randomBytes(24).toString('hex');
  const { dir, cleanup } = opts.dir === undefined ? tempDir('ugcfs-cluster-') : { dir: opts.dir, cleanup: () => {} };
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const nsUrl = `http://127.0.0.1:${port}`;
  const env: Record<string, string> = {
    // 'info' at least: readiness is the "listening" info line
    UGCFS_LOG_LEVEL: process.env.UGCFS_LOG_LEVEL ?? 'info',
    ...(opts.env ?? {}),
    UGCFS_CLUSTER_SECRET: secret,
  };
  const cliEnv: Record<string, string> = { UGCFS_NAMESERVER: nsUrl, UGCFS_CLUSTER_SECRET: secret, ...(opts.adminToken ? { UGCFS_ADMIN_TOKEN: opts.adminToken } : {}) };
  // A test reads every log line; a long benchmark keeps the first ones.
  const start = (args: string[], roleEnv: Record<string, string>, nodeFlags?: string[]) => startRole(args, { env: roleEnv, nodeFlags, maxLines: test ? undefined : 2000 });

  const nsArgs = [
    'nameserver',
    '--data', join(dir, 'ns'),
    '--port', String(port),
    '--replicas', String(opts.replicas ?? 2),
    ...flag('--heartbeat-ms', heartbeatMs),
    ...flag('--dead-after-ms', t(opts.deadAfterMs, 1500)),
    ...flag('--repair-delay-ms', t(opts.repairDelayMs, 500)),
    ...flag('--startup-grace-ms', t(opts.startupGraceMs, 1000)),
    ...(opts.nameserverArgs ?? []),
  ];
  const nsEnv = { ...env, ...(opts.adminToken ? { UGCFS_ADMIN_TOKEN: opts.adminToken } : {}) };
  const dsDir = (i: number) => join(dir, `ds-${i + 1}`);
  const dsArgs = (i: number, rack: string) => [
    'dataserver',
    '--data', dsDir(i),
    '--id', `ds-${i + 1}`,
    '--nameserver', nsUrl,
    '--port', '0',
    '--rack', rack,
    ...flag('--block-size', t(opts.blockSize, 1024 * 1024)),
    ...flag('--heartbeat-ms', heartbeatMs),
    ...(fsync === undefined ? [] : [`--fsync=${fsync}`]),
    ...(opts.dataserverArgs ?? []),
  ];
  const originArgs = ['origin', '--nameserver', nsUrl, '--port', '0', ...(opts.originArgs ?? [])];
  const rackOf = (i: number) => (racks.length === 0 ? '' : racks[i % racks.length]!);
  const startDataserver = (i: number) => start(dsArgList[i]!, env, opts.nodeFlags?.dataserver);

  const procs: RoleProcess[] = [];
  const dsArgList: string[][] = [];
  let nameserver: RoleProcess | undefined;
  let origin: RoleProcess | undefined;
  const client = new ClusterClient({ nameserver: nsUrl, secret, timeoutMs: 5000, locationTtlMs: 2000 });

  const cluster: Cluster<RoleProcess> = {
    get nameserver() {
      return nameserver!;
    },
    get origin() {
      return origin;
    },
    dataservers: procs,
    dsIds: [],
    dsDirs: [],
    dir,
    secret,
    uploadToken,
    client,
    env: cliEnv,
    commands: [],
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
      procs[i] = await startDataserver(i);
      return procs[i]!;
    },
    async addDataserver(o = {}) {
      const i = procs.length;
      dsArgList[i] = dsArgs(i, o.rack ?? rackOf(i));
      procs[i] = await startDataserver(i);
      cluster.dsIds[i] = `ds-${i + 1}`;
      cluster.dsDirs[i] = dsDir(i);
      return i;
    },
    async killNameserver(signal = 'SIGKILL') {
      await nameserver?.kill(signal);
    },
    async restartNameserver(extraArgs = []) {
      await nameserver?.kill('SIGKILL');
      nameserver = await start([...nsArgs, ...extraArgs], nsEnv, opts.nodeFlags?.nameserver);
      return nameserver;
    },
    async stop() {
      if (test) {
        await Promise.all([origin?.kill('SIGKILL'), ...procs.map((p) => p.kill('SIGKILL')), nameserver?.kill('SIGKILL')]);
      } else {
        await Promise.all([origin?.stop(), ...procs.map((p) => p.stop())]);
        await nameserver?.stop();
      }
      await client.close();
      cleanup();
    },
  };

  try {
    cluster.commands.push(`ugcfs ${nsArgs.join(' ')}`);
    nameserver = await start(nsArgs, nsEnv, opts.nodeFlags?.nameserver);
    for (let i = 0; i < n; i++) dsArgList[i] = dsArgs(i, rackOf(i));
    if (n > 0) cluster.commands.push(`ugcfs ${dsArgList[0]!.join(' ')}   (x${n})`);
    const started = await Promise.all(dsArgList.map((_, i) => startDataserver(i)));
    procs.push(...started);
    cluster.dsIds.push(...started.map((_, i) => `ds-${i + 1}`));
    cluster.dsDirs.push(...started.map((_, i) => dsDir(i)));
    // Writes need every data server registered, else placement sees fewer than `replicas`.
    await cluster.waitForAlive();
    if (opts.origin) {
      cluster.commands.push(`ugcfs ${originArgs.join(' ')}`);
      origin = await start(originArgs, { UGCFS_UPLOAD_TOKENS: uploadToken, ...env }, opts.nodeFlags?.origin);
    }
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
