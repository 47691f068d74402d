// A high-availability cluster for tests, every part real: etcd members (test/helpers/etcd.ts),
// name servers sharing their state in etcd (`--etcd`, each with its own advertised URL and a
// short --lease-ms), data servers heartbeating every name server, and optionally an origin
// given the whole list. Name servers can be killed, frozen and restarted by index; leader()
// asks them who leads.
//
//   const ha = await startHaCluster({ nameservers: 2, dataservers: 3, origin: true });
//   const i = await ha.leaderIndex();
//   await ha.nameservers[i]!.kill();
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import type { LeaderStatus } from '../../src/wire/protocol.ts';
import { startEtcd, type EtcdCluster } from './etcd.ts';
import { startRole, type RoleProcess } from './cluster.ts';
import { run, tempDir, waitFor, type RunResult } from './proc.ts';
import { freePort } from './ready-process.ts';

export interface HaClusterOptions {
  nameservers?: number;
  dataservers?: number;
  /** --lease-ms of every name server (default 2000: etcd's shortest lease with its default election timeout is about 1.5 s) */
  leaseMs?: number;
  replicas?: number;
  /** data servers' --block-size (default 1 MiB) */
  blockSize?: number;
  origin?: boolean;
  originArgs?: string[];
  nameserverArgs?: string[];
  /** an etcd cluster to use (default: three new members, stopped by stop()) */
  etcd?: EtcdCluster;
  etcdPrefix?: string;
  /** the etcd endpoints name server i is given (default every member's client URL), e.g. through TCP proxies */
  etcdEndpointsFor?: (i: number, etcd: EtcdCluster) => string[];
}

export interface HaCluster {
  etcd: EtcdCluster;
  /** name-server processes by index; a killed one stays in place until restarted */
  nameservers: RoleProcess[];
  /** every name server's URL, by index (fixed ports: a restart keeps its URL) */
  nsUrls: string[];
  dataservers: RoleProcess[];
  dsIds: string[];
  origin?: RoleProcess;
  secret: string;
  /** the upload token the origin takes */
  uploadToken: string;
  /** a client given every name server */
  client: ClusterClient;
  /** UGCFS_NAMESERVER (the list) and the secret, for `ugcfs` commands */
  env: Record<string, string>;
  /** runs an admin command (`ugcfs <args>`) against the group (UGCFS_NAMESERVER lists every name server) */
  cli(args: string[], opts?: { env?: Record<string, string>; timeoutMs?: number }): Promise<RunResult>;
  /** GET /leader of name server i (undefined when it does not answer) */
  leaderOf(i: number): Promise<LeaderStatus | undefined>;
  /** the index of the name server that says it leads, waiting until one does */
  leaderIndex(timeoutMs?: number): Promise<number>;
  /** GET /metrics of name server i, as text ('' when it does not answer) */
  metricsOf(i: number): Promise<string>;
  /** starts name server i again (after a kill) */
  restartNameserver(i: number): Promise<RoleProcess>;
  /** starts data server i again on its data (after a kill) */
  restartDataserver(i: number): Promise<RoleProcess>;
  /** starts the origin again on its port (after a kill) */
  restartOrigin(): Promise<RoleProcess>;
  stop(): Promise<void>;
}

export async function startHaCluster(o: HaClusterOptions = {}): Promise<HaCluster> {
  const etcd = o.etcd ?? (await startEtcd({ members: 3 }));
  const { dir, cleanup } = tempDir('ugcfs-ha-');
  mkdirSync(dir, { recursive: true });
  const secret = randomBytes(24).toString('hex');
  const uploadToken = randomBytes(24).toString('hex');
  const prefix = o.etcdPrefix ?? `/ugcfs/t-${randomBytes(4).toString('hex')}`;
  const nsCount = o.nameservers ?? 2;
  const ports = await Promise.all(Array.from({ length: nsCount }, () => freePort()));
  const nsUrls = ports.map((p) => `http://127.0.0.1:${p}`);
  const list = nsUrls.join(',');
  const env = { UGCFS_LOG_LEVEL: 'info', UGCFS_CLUSTER_SECRET: secret };
  const nsArgs = (i: number) => [
    'nameserver',
    '--etcd', (o.etcdEndpointsFor?.(i, etcd) ?? etcd.endpoints).join(','),
    '--etcd-prefix', prefix,
    '--advertise-url', nsUrls[i]!,
    '--port', String(ports[i]),
    '--lease-ms', String(o.leaseMs ?? 2000),
    '--replicas', String(o.replicas ?? 2),
    '--heartbeat-ms', '100',
    '--dead-after-ms', '1500',
    '--repair-delay-ms', '2000',
    '--startup-grace-ms', '1000',
    ...(o.nameserverArgs ?? []),
  ];
  const dsArgs = (i: number) => ['dataserver', '--data', join(dir, `ds-${i + 1}`), '--id', `ds-${i + 1}`, '--nameserver', list, '--port', '0', '--rack', ['a', 'b', 'c'][i % 3]!, '--block-size', String(o.blockSize ?? 1024 * 1024), '--heartbeat-ms', '100', '--fsync=false'];
  const originArgs = ['origin', '--nameserver', list, '--port', String(await freePort()), ...(o.originArgs ?? [])];
  const nameservers: RoleProcess[] = [];
  const dataservers: RoleProcess[] = [];
  const dsIds: string[] = [];
  let origin: RoleProcess | undefined;
  const client = new ClusterClient({ nameserver: list, secret, timeoutMs: 5000, locationTtlMs: 2000 });
  const all = () => [origin, ...dataservers, ...nameservers].filter((p): p is RoleProcess => p !== undefined);

  const ha: HaCluster = {
    etcd,
    nameservers,
    nsUrls,
    dataservers,
    dsIds,
    get origin() {
      return origin;
    },
    secret,
    uploadToken,
    client,
    env: { UGCFS_NAMESERVER: list, UGCFS_CLUSTER_SECRET: secret },
    cli: (args, c = {}) => run(args, { env: { ...ha.env, ...(c.env ?? {}) }, ...(c.timeoutMs !== undefined ? { timeoutMs: c.timeoutMs } : {}) }),
    async leaderOf(i) {
      try {
        const res = await fetch(`${nsUrls[i]}/leader`, { headers: { 'x-ugcfs-secret': secret }, signal: AbortSignal.timeout(1000) });
        return res.status === 200 ? ((await res.json()) as LeaderStatus) : undefined;
      } catch {
        return undefined;
      }
    },
    async leaderIndex(timeoutMs = 20_000) {
      return waitFor(
        'a name server to lead',
        async () => {
          const all = await Promise.all(nsUrls.map((_, i) => ha.leaderOf(i)));
          const i = all.findIndex((s) => s?.role === 'leader');
          return i >= 0 ? i : undefined;
        },
        timeoutMs,
        50,
      );
    },
    async metricsOf(i) {
      try {
        const res = await fetch(`${nsUrls[i]}/metrics`, { headers: { 'x-ugcfs-secret': secret }, signal: AbortSignal.timeout(2000) });
        return res.status === 200 ? await res.text() : '';
      } catch {
        return '';
      }
    },
    async restartNameserver(i) {
      nameservers[i] = await startRole(nsArgs(i), { env });
      return nameservers[i]!;
    },
    async restartDataserver(i) {
      dataservers[i] = await startRole(dsArgs(i), { env });
      return dataservers[i]!;
    },
    async restartOrigin() {
      origin = await startRole(originArgs, { env: { ...env, UGCFS_UPLOAD_TOKENS: uploadToken } });
      return origin;
    },
    async stop() {
      await Promise.all(all().map((p) => p.kill('SIGKILL').catch(() => undefined)));
      if (!o.etcd) await etcd.stop();
      cleanup();
    },
  };

  try {
    for (let i = 0; i < nsCount; i++) nameservers.push(await startRole(nsArgs(i), { env }));
    await ha.leaderIndex(30_000);
    const n = o.dataservers ?? 3;
    for (let i = 0; i < n; i++) {
      dsIds.push(`ds-${i + 1}`);
      dataservers.push(await startRole(dsArgs(i), { env }));
    }
    await waitFor('every data server alive at the leader', async () => {
      const i = await ha.leaderIndex();
      const res = await fetch(`${nsUrls[i]}/status`, { headers: { 'x-ugcfs-secret': secret } }).catch(() => undefined);
      if (!res || res.status !== 200) return false;
      const s = (await res.json()) as { dataservers: Array<{ alive: boolean }> };
      return s.dataservers.filter((d) => d.alive).length >= n;
    }, 30_000);
    if (o.origin) origin = await startRole(originArgs, { env: { ...env, UGCFS_UPLOAD_TOKENS: uploadToken } });
    return ha;
  } catch (err) {
    await ha.stop();
    throw err;
  }
}
