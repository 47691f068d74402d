// A real ugcfs cluster for benchmarks, started the way users start it: `ugcfs nameserver`,
// `ugcfs dataserver` and `ugcfs origin` processes on loopback with --port 0. Files are
// written through the project's cluster client when it exists, else by the internal
// protocol (assign, then PUT to the primary), which is the same two hops.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startUgcfs, type Child } from './spawn.ts';
import { callJson, callRaw, expectOk } from '../../src/http-client.ts';
import { ClusterClient } from '../../src/cluster-client.ts';
import { NS_ROUTES, DS_ROUTES, HEADERS, type AssignResult, type ClusterStatus } from '../../src/protocol.ts';
import { availableParallelism } from 'node:os';

export const SECRET = 'bench-cluster-secret';
/** origin workers for the `--workers` rows: one per core, as nginx's `worker_processes auto` */
export const ORIGIN_WORKERS = availableParallelism();

export function rolesAvailable(): { nameserver: boolean; dataserver: boolean; origin: boolean; client: boolean } {
  const has = (p: string) => existsSync(join(ROOT, p));
  return {
    nameserver: has('cli/commands/nameserver.ts') && has('nameserver/main.ts'),
    dataserver: has('cli/commands/dataserver.ts') && has('dataserver/main.ts'),
    origin: has('cli/commands/origin.ts') && has('origin/main.ts'),
    client: has('src/cluster-client.ts'),
  };
}

export interface ClusterOptions {
  dir: string;
  dataservers: number;
  replicas: number;
  origin?: boolean;
  /** extra flags per role */
  nameserverArgs?: string[];
  dataserverArgs?: string[];
  originArgs?: string[];
  env?: Record<string, string>;
  /** node flags for the origin process (profiling) */
  originNodeFlags?: string[];
  dataserverNodeFlags?: string[];
  nameserverNodeFlags?: string[];
}

export interface Cluster {
  nameserver: Child;
  dataservers: Child[];
  origin?: Child;
  env: Record<string, string>;
  commands: string[];
  status(): Promise<ClusterStatus>;
  stop(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const env = { UGCFS_CLUSTER_SECRET: SECRET, UGCFS_LOG_LEVEL: 'info', ...o.env };
  const commands: string[] = [];
  mkdirSync(o.dir, { recursive: true });
  const nsArgs = ['nameserver', '--data', join(o.dir, 'ns'), '--port', '0', '--replicas', String(o.replicas), ...(o.nameserverArgs ?? [])];
  commands.push(`ugcfs ${nsArgs.join(' ')}`);
  const nameserver = await startUgcfs(nsArgs, { env, nodeFlags: o.nameserverNodeFlags });
  const dataservers: Child[] = [];
  const started = [];
  for (let i = 0; i < o.dataservers; i++) {
    const args = ['dataserver', '--data', join(o.dir, `ds${i}`), '--nameserver', nameserver.url, '--port', '0', '--rack', `r${i}`, ...(o.dataserverArgs ?? [])];
    if (i === 0) commands.push(`ugcfs ${args.join(' ')}   (x${o.dataservers})`);
    started.push(startUgcfs(args, { env, nodeFlags: o.dataserverNodeFlags }));
  }
  dataservers.push(...(await Promise.all(started)));
  const status = () => callJson<ClusterStatus>(nameserver.url + NS_ROUTES.status, { secret: SECRET });
  // Writes need every data server registered, else placement sees fewer than `replicas`.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const s = await status();
      if (s.dataservers.filter((d) => d.alive).length >= o.dataservers) break;
    } catch { /* not ready */ }
    if (Date.now() > deadline) throw new Error('data servers did not register with the name server');
    await new Promise((r) => setTimeout(r, 100));
  }
  let origin: Child | undefined;
  if (o.origin) {
    const args = ['origin', '--nameserver', nameserver.url, '--port', '0', ...(o.originArgs ?? [])];
    commands.push(`ugcfs ${args.join(' ')}`);
    origin = await startUgcfs(args, { env, nodeFlags: o.originNodeFlags });
  }
  return {
    nameserver,
    dataservers,
    origin,
    env,
    commands,
    status,
    stop: async () => {
      await Promise.all([origin?.stop(), ...dataservers.map((d) => d.stop())]);
      await nameserver.stop();
    },
  };
}

export interface Writer {
  how: string;
  /** stores bytes, resolves with the fid; `replicas` overrides the name server's default */
  put(bytes: Buffer, mime: string, replicas?: number): Promise<string>;
  close?(): Promise<void>;
}

/** Assign + PUT to the primary by hand (the internal protocol of src/protocol.ts). */
export function protocolWriter(nameserverUrl: string): Writer {
  return {
    how: 'assign + PUT to the primary (internal protocol)',
    async put(bytes, mime, replicas) {
      const a = await callJson<AssignResult>(nameserverUrl + NS_ROUTES.assign, { method: 'POST', body: replicas ? { replicas } : {}, secret: SECRET });
      const [primary, ...peers] = a.replicas;
      const headers: Record<string, string> = { [HEADERS.mime]: mime, [HEADERS.uploadTime]: String(Date.now()) };
      if (peers.length) headers[HEADERS.replicas] = peers.map((p) => p.url).join(',');
      expectOk(await callRaw(primary!.url + DS_ROUTES.needle.replace(':fid', a.fid), { method: 'PUT', body: bytes, headers, secret: SECRET }));
      return a.fid;
    },
  };
}

/** The project's cluster client (src/cluster-client.ts): assign, then a replicated PUT, with retries. */
/** `writeBatch: 1` turns the client's write coalescing off (a PUT per write). */
export async function clientWriter(nameserverUrl: string, opts: { writeBatch?: number } = {}): Promise<Writer> {
  const client = new ClusterClient({ nameserver: nameserverUrl, secret: SECRET, writeBatch: opts.writeBatch });
  return {
    how: opts.writeBatch === 1 ? 'cluster client, one PUT per write' : 'cluster client',
    async put(bytes, mime, replicas) {
      return (await client.write(bytes, { mime, replicas })).fid;
    },
    close: () => client.close(),
  };
}

/** Uploads through the origin's public API (what sellers do). */
export async function originUpload(originUrl: string, bytes: Buffer, mime: string): Promise<string> {
  const r = await callJson<{ files: { fid: string }[] }>(originUrl + '/upload', { method: 'POST', body: bytes, headers: { 'content-type': mime } });
  return r.files[0]!.fid;
}
