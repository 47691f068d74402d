// A real ugcfs cluster for benchmarks, started by the one cluster harness the tests use
// (test/helpers/cluster.ts) in its 'server' tuning: `ugcfs nameserver`, `ugcfs dataserver`
// and `ugcfs origin` processes on loopback with each role's own defaults, as users start
// them, every data server on its own rack. Files are written through the project's cluster
// client, or by the internal protocol (assign, then PUT to the primary): the same two hops.
// Under `--tls` (bench/lib/tls.ts) the same roles serve HTTPS: startBenchCluster.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import type { Dispatcher } from 'undici';
import { ROOT, startUgcfs } from './spawn.ts';
import type { BenchTls } from './tls.ts';
import { callJson, callRaw, expectOk } from '../../src/clients/http-client.ts';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { NS_ROUTES, DS_ROUTES, HEADERS, type AssignResult, type ClusterStatus } from '../../src/wire/protocol.ts';
import { startCluster as startHarness, freePort, type Cluster as HarnessCluster, type ClusterOptions as HarnessOptions, type RoleProcess } from '../../test/helpers/cluster.ts';
import { waitFor } from '../../test/helpers/proc.ts';

export type Cluster = HarnessCluster<RoleProcess>;
/** The cluster secret of every cluster of this run: random, as roles refuse one under 32 characters or an example. */
export const SECRET = randomBytes(32).toString('hex');
/** The origins' upload token of this run (UGCFS_UPLOAD_TOKENS): an origin takes uploads only with a bearer token. */
export const UPLOAD_TOKEN = randomBytes(32).toString('hex');
/** What every role the bench starts gets in its environment: the secret, and the upload token origins take. */
export const ROLE_ENV: Readonly<Record<string, string>> = { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_UPLOAD_TOKENS: UPLOAD_TOKEN };
/** origin workers for the `--workers` rows: one per core, as nginx's `worker_processes auto` */
export const ORIGIN_WORKERS = availableParallelism();

export function rolesAvailable(): { nameserver: boolean; dataserver: boolean; origin: boolean; client: boolean } {
  const has = (p: string) => existsSync(join(ROOT, p));
  return {
    nameserver: has('cli/commands/nameserver.ts') && has('nameserver/main.ts'),
    dataserver: has('cli/commands/dataserver.ts') && has('dataserver/main.ts'),
    origin: has('cli/commands/origin.ts') && has('origin/main.ts'),
    client: has('src/clients/cluster-client.ts'),
  };
}

export type ClusterOptions = Omit<HarnessOptions, 'tuning' | 'secret' | 'racks'> & { dir: string; dataservers: number; replicas: number };

/** Starts the cluster with the roles' own defaults; every flag a bench changes is in `commands`. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const c = await startHarness({
    ...o,
    tuning: 'server',
    secret: SECRET,
    racks: Array.from({ length: o.dataservers }, (_, i) => `r${i}`),
    env: { UGCFS_LOG_LEVEL: 'info', ...ROLE_ENV, ...o.env },
  });
  // More origins started with `env: cluster.env` take uploads too.
  c.env.UGCFS_UPLOAD_TOKENS = UPLOAD_TOKEN;
  return c;
}

/** What the reads and writes sections use of a cluster, over HTTP or HTTPS. */
export type BenchCluster = Pick<Cluster, 'nameserver' | 'dataservers' | 'origin' | 'env' | 'commands' | 'stop'> & {
  /** what the bench's clients send through: an agent trusting the run's CA under --tls, else undici's default */
  dispatcher?: Dispatcher;
};

/**
 * startCluster, or under --tls the same roles (same flags, racks and readiness) each serving
 * HTTPS and trusting the CA; an origin a section adds gets `tls.args` too.
 */
export async function startBenchCluster(o: ClusterOptions, tls?: BenchTls): Promise<BenchCluster> {
  if (!tls) return startCluster(o);
  // The test harness speaks http:// only; the roles are started here, with its process starter.
  mkdirSync(o.dir, { recursive: true });
  const nsUrl = `https://127.0.0.1:${await freePort()}`;
  const env = { UGCFS_LOG_LEVEL: 'info', ...ROLE_ENV, ...o.env };
  const nsArgs = ['nameserver', '--data', join(o.dir, 'ns'), '--port', new URL(nsUrl).port, '--replicas', String(o.replicas), ...(o.nameserverArgs ?? [])];
  const dsArgs = (i: number) => ['dataserver', '--data', join(o.dir, `ds-${i + 1}`), '--id', `ds-${i + 1}`, '--nameserver', nsUrl, '--port', '0', '--rack', `r${i}`, ...(o.dataserverArgs ?? [])];
  const originArgs = ['origin', '--nameserver', nsUrl, '--port', '0', ...(o.originArgs ?? [])];
  const shown = (args: string[]) => `ugcfs ${[...args, ...tls.args].join(' ')}`;
  const commands = [shown(nsArgs), `${shown(dsArgs(0))}   (x${o.dataservers})`, ...(o.origin ? [shown(originArgs)] : [])];
  const procs: RoleProcess[] = [];
  const started = async (args: string[], nodeFlags?: string[]) => {
    const p = await startUgcfs([...args, ...tls.args], { env, nodeFlags });
    procs.push(p);
    return p;
  };
  // SIGTERM, origins and data servers before the name server, as the harness's 'server' tuning.
  const stop = async () => {
    await Promise.all(procs.slice(1).map((p) => p.stop()));
    await procs[0]?.stop();
  };
  try {
    const nameserver = await started(nsArgs, o.nodeFlags?.nameserver);
    const dataservers = await Promise.all(Array.from({ length: o.dataservers }, (_, i) => started(dsArgs(i), o.nodeFlags?.dataserver)));
    await waitFor('every data server alive over https', async () => {
      const s = await callJson<ClusterStatus>(nsUrl + NS_ROUTES.status, { secret: SECRET, dispatcher: tls.dispatcher });
      return s.dataservers.filter((d) => d.alive).length >= o.dataservers;
    }, 60_000, 200);
    const origin = o.origin ? await started(originArgs, o.nodeFlags?.origin) : undefined;
    return { nameserver, dataservers, origin, env: { ...env, UGCFS_NAMESERVER: nsUrl }, commands, stop, dispatcher: tls.dispatcher };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface Writer {
  how: string;
  /** stores bytes, resolves with the fid; `replicas` overrides the name server's default */
  put(bytes: Buffer, mime: string, replicas?: number): Promise<string>;
  close?(): Promise<void>;
}

/** Assign + PUT to the primary by hand (the internal protocol of src/wire/protocol.ts). */
export function protocolWriter(nameserverUrl: string, dispatcher?: Dispatcher): Writer {
  return {
    how: 'assign + PUT to the primary (internal protocol)',
    async put(bytes, mime, replicas) {
      const a = await callJson<AssignResult>(nameserverUrl + NS_ROUTES.assign, { method: 'POST', body: replicas ? { replicas } : {}, secret: SECRET, dispatcher });
      const [primary, ...peers] = a.replicas;
      const headers: Record<string, string> = { [HEADERS.mime]: mime, [HEADERS.uploadTime]: String(Date.now()) };
      if (peers.length) headers[HEADERS.replicas] = peers.map((p) => p.url).join(',');
      expectOk(await callRaw(primary!.url + DS_ROUTES.needle.replace(':fid', a.fid), { method: 'PUT', body: bytes, headers, secret: SECRET, dispatcher }));
      return a.fid;
    },
  };
}

/** The project's cluster client (src/clients/cluster-client.ts): assign, then a replicated PUT, with retries. */
/** `writeBatch: 1` turns the client's write coalescing off (a PUT per write). */
export async function clientWriter(nameserverUrl: string, opts: { writeBatch?: number; dispatcher?: Dispatcher } = {}): Promise<Writer> {
  const client = new ClusterClient({ nameserver: nameserverUrl, secret: SECRET, writeBatch: opts.writeBatch, dispatcher: opts.dispatcher });
  return {
    how: opts.writeBatch === 1 ? 'cluster client, one PUT per write' : 'cluster client',
    async put(bytes, mime, replicas) {
      return (await client.write(bytes, { mime, replicas })).fid;
    },
    close: () => client.close(),
  };
}

/** Uploads through the origin's public API (what sellers do), with the run's upload token. */
export async function originUpload(originUrl: string, bytes: Buffer, mime: string, dispatcher?: Dispatcher): Promise<string> {
  const headers = { 'content-type': mime, authorization: `Bearer ${UPLOAD_TOKEN}` };
  const r = await callJson<{ files: { fid: string }[] }>(originUrl + '/upload', { method: 'POST', body: bytes, headers, dispatcher });
  return r.files[0]!.fid;
}
