// A real cluster where every link goes through a TCP proxy (test/helpers/tcp-proxy.ts):
// clients reach the name server through `nsProxy`; each data server advertises its proxy
// as --public-url, so clients and peer replicas reach it only through `dsProxies[i]`; and
// each data server sends its heartbeats through its own `hbProxies[i]`. Cutting one proxy
// partitions exactly one link. `direct[i]` bypasses the proxies, for checking afterwards.
import { join } from 'node:path';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { holdsCopy } from '../helpers/needle-copy.ts';
import { start } from '../helpers/proc.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

export interface ProxiedCluster {
  cluster: Cluster;
  nsProxy: TcpProxy;
  dsProxies: TcpProxy[];
  hbProxies: TcpProxy[];
  /** data servers' own listen URLs (no proxy) */
  direct: string[];
  /** a client that goes through the proxies */
  client: ClusterClient;
  /** does data server i hold the file? asked directly, past the proxies */
  holds(i: number, fid: string): Promise<boolean>;
  proxies(): TcpProxy[];
  healAll(): void;
  /** SIGKILLs data server i and starts it again on the same port, data and proxies */
  restartDataserver(i: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startProxiedCluster(o: { dataservers?: number; replicas?: number; clientTimeoutMs?: number; blockSize?: number; dataserverArgs?: string[]; deadAfterMs?: number } = {}): Promise<ProxiedCluster> {
  const n = o.dataservers ?? 3;
  const cluster = await startCluster({ dataservers: 0, replicas: o.replicas ?? 2, racks: [''], deadAfterMs: o.deadAfterMs ?? 1500, repairDelayMs: 500 });
  const nsPort = Number(new URL(cluster.nameserver.url).port);
  const nsProxy = await startTcpProxy(nsPort);
  const dsProxies: TcpProxy[] = [];
  const hbProxies: TcpProxy[] = [];
  const direct: string[] = [];
  const argsOf: string[][] = [];
  const env = { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_LOG_LEVEL: process.env.UGCFS_LOG_LEVEL ?? 'info' };
  try {
    const started = [];
    for (let i = 0; i < n; i++) {
      argsOf[i] = [];
      const port = await freePort();
      const dsProxy = await startTcpProxy(port);
      const hbProxy = await startTcpProxy(nsPort);
      dsProxies.push(dsProxy);
      hbProxies.push(hbProxy);
      direct.push(`http://127.0.0.1:${port}`);
      started.push(
        start(
          (argsOf[i] = [
            'dataserver',
            '--data', join(cluster.dir, `ds-${i + 1}`),
            '--id', `ds-${i + 1}`,
            '--nameserver', hbProxy.url,
            '--port', String(port),
            '--public-url', dsProxy.url,
            '--block-size', String(o.blockSize ?? 1024 * 1024),
            '--heartbeat-ms', '100',
            '--fsync=false',
            ...(o.dataserverArgs ?? []),
          ]),
          { env },
        ),
      );
    }
    const procs = await Promise.all(started);
    cluster.dataservers.push(...procs);
    cluster.dsIds.push(...procs.map((_, i) => `ds-${i + 1}`));
    await cluster.waitForAlive();
  } catch (err) {
    await Promise.all([nsProxy, ...dsProxies, ...hbProxies].map((p) => p.close()));
    await cluster.stop();
    throw err;
  }
  const client = new ClusterClient({ nameserver: nsProxy.url, secret: cluster.secret, timeoutMs: o.clientTimeoutMs ?? 1500, locationTtlMs: 2000 });
  const all = () => [nsProxy, ...dsProxies, ...hbProxies];
  return {
    cluster,
    nsProxy,
    dsProxies,
    hbProxies,
    direct,
    client,
    holds: (i, fid) => holdsCopy(direct[i]!, fid, cluster.secret, { timeoutMs: 5000 }),
    proxies: all,
    async restartDataserver(i) {
      await cluster.dataservers[i]!.kill('SIGKILL');
      cluster.dataservers[i] = await start(argsOf[i]!, { env });
    },
    healAll() {
      for (const p of all()) p.set({ mode: 'pass', delayMs: 0 });
    },
    async stop() {
      await client.close();
      await Promise.all(all().map((p) => p.close()));
      await cluster.stop();
    },
  };
}
