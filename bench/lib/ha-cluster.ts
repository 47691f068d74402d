// Clusters for the ha section, started the way users start them: either one name server on
// its embedded LevelDB (`--data`), or a group of name servers sharing their state in etcd
// (`--etcd`, `--etcd-prefix`, `--advertise-url`, `--lease-ms`), each with its role's own
// defaults otherwise. Both kinds get the same data servers (same flags, one rack each, a
// `--nameserver` list of every name server) and optionally an origin, so a comparison of
// the two differs in the name server's store alone. The etcd members come from the test
// harness (test/helpers/etcd.ts), as bench/lib/cluster.ts takes its cluster from
// test/helpers/cluster.ts; test/helpers/ha-cluster.ts is not used because it starts every
// role in its short test timings (1 MiB blocks, 100 ms heartbeats), not as users run them.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { NS_ROUTES, type LeaderStatus } from '../../src/wire/protocol.ts';
import { freePort } from '../../test/helpers/ready-process.ts';
import { waitFor } from '../../test/helpers/proc.ts';
import { startUgcfs, type Child } from './spawn.ts';
import { ROLE_ENV, SECRET } from './cluster.ts';

export interface GroupOptions {
  dir: string;
  /** etcd client URLs: a group on etcd; undefined: one name server on LevelDB */
  etcd?: string[];
  etcdPrefix?: string;
  /** name servers of an etcd group (default 2) */
  nameservers?: number;
  /** --lease-ms; undefined leaves the default (5000) */
  leaseMs?: number;
  dataservers: number;
  replicas: number;
  dataserverArgs?: string[];
  origin?: boolean;
}

export interface Group {
  kind: 'etcd' | 'leveldb';
  nsUrls: string[];
  nameservers: (Child | undefined)[];
  dataservers: Child[];
  origin?: Child;
  /** the `--nameserver` list every other role gets */
  list: string;
  /** the commands that started it, as a reader would type them */
  commands: string[];
  client: ClusterClient;
  leaderOf(i: number, timeoutMs?: number): Promise<LeaderStatus | undefined>;
  /** the index of the name server that says it leads, waiting until one does */
  leaderIndex(timeoutMs?: number): Promise<number>;
  /** SIGKILL of name server i; resolves when it has exited */
  killNameserver(i: number): Promise<void>;
  /** starts name server i again with the same flags and port */
  restartNameserver(i: number): Promise<void>;
  stop(): Promise<void>;
}

const env = ROLE_ENV;

export async function startGroup(o: GroupOptions): Promise<Group> {
  mkdirSync(o.dir, { recursive: true });
  const kind = o.etcd ? 'etcd' : 'leveldb';
  const count = o.etcd ? (o.nameservers ?? 2) : 1;
  const ports = await Promise.all(Array.from({ length: count }, () => freePort()));
  const nsUrls = ports.map((p) => `http://127.0.0.1:${p}`);
  const list = nsUrls.join(',');
  const nsArgs = (i: number): string[] => [
    'nameserver',
    ...(o.etcd
      ? ['--etcd', o.etcd.join(','), '--etcd-prefix', o.etcdPrefix ?? '/ugcfs/bench', '--advertise-url', nsUrls[i]!, ...(o.leaseMs ? ['--lease-ms', String(o.leaseMs)] : [])]
      : ['--data', join(o.dir, 'ns')]),
    '--port', String(ports[i]),
    '--replicas', String(o.replicas),
  ];
  const dsArgs = (i: number): string[] => ['dataserver', '--data', join(o.dir, `ds-${i + 1}`), '--id', `ds-${i + 1}`, '--nameserver', list, '--port', '0', '--rack', `r${i}`, ...(o.dataserverArgs ?? [])];
  // Uploads at full speed: the per-token rate limit (--upload-rate) would stretch the outage measured.
  const originArgs = ['origin', '--nameserver', list, '--port', '0', '--upload-rate', '0'];
  const nameservers: (Child | undefined)[] = [];
  const dataservers: Child[] = [];
  let origin: Child | undefined;
  const client = new ClusterClient({ nameserver: list, secret: SECRET });
  const commands = [
    ...nsUrls.map((_, i) => `ugcfs ${nsArgs(i).join(' ')}`),
    `ugcfs ${dsArgs(0).join(' ')}   (x${o.dataservers})`,
    ...(o.origin ? [`ugcfs ${originArgs.join(' ')}`] : []),
  ];

  const group: Group = {
    kind,
    nsUrls,
    nameservers,
    dataservers,
    get origin() {
      return origin;
    },
    list,
    commands,
    client,
    async leaderOf(i, timeoutMs = 1000) {
      try {
        const res = await fetch(nsUrls[i]! + NS_ROUTES.leader, { headers: { 'x-ugcfs-secret': SECRET }, signal: AbortSignal.timeout(timeoutMs) });
        return res.status === 200 ? ((await res.json()) as LeaderStatus) : undefined;
      } catch {
        return undefined;
      }
    },
    leaderIndex(timeoutMs = 30_000) {
      return waitFor('a name server to lead', async () => {
        const all = await Promise.all(nsUrls.map((_, i) => group.leaderOf(i)));
        const i = all.findIndex((s) => s?.role === 'leader');
        return i >= 0 ? i : undefined;
      }, timeoutMs, 25);
    },
    async killNameserver(i) {
      await nameservers[i]?.kill('SIGKILL');
      nameservers[i] = undefined;
    },
    async restartNameserver(i) {
      await nameservers[i]?.kill('SIGKILL');
      nameservers[i] = await startUgcfs(nsArgs(i), { env });
    },
    async stop() {
      await Promise.all([origin?.stop(), ...dataservers.map((d) => d.stop())].map((p) => p?.catch(() => undefined)));
      await Promise.all(nameservers.map((n) => n?.stop().catch(() => undefined)));
      await client.close().catch(() => undefined);
    },
  };

  try {
    // The group's members start together (a standby waits for the leader's state).
    nameservers.push(...(await Promise.all(nsUrls.map((_, i) => startUgcfs(nsArgs(i), { env })))));
    await group.leaderIndex(60_000);
    dataservers.push(...(await Promise.all(Array.from({ length: o.dataservers }, (_, i) => startUgcfs(dsArgs(i), { env })))));
    // Writes need every data server registered at the leader, else placement sees fewer than `replicas`.
    await waitFor('every data server alive at the leader', async () => {
      const i = await group.leaderIndex();
      const res = await fetch(nsUrls[i]! + NS_ROUTES.status, { headers: { 'x-ugcfs-secret': SECRET } }).catch(() => undefined);
      if (!res || res.status !== 200) return false;
      const s = (await res.json()) as { dataservers: Array<{ alive: boolean }> };
      return s.dataservers.filter((d) => d.alive).length >= o.dataservers;
    }, 60_000, 200);
    if (o.origin) origin = await startUgcfs(originArgs, { env });
  } catch (err) {
    await group.stop();
    throw err;
  }
  return group;
}
