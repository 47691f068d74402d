// Starts one data server: the block store under --data, its HTTP API, and the heartbeat
// loop. Everything is per instance, so the all-in-one `ugcfs server` can start several.
import { mkdirSync, readFileSync, writeFileSync, accessSync, constants, renameSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { UgcfsError } from '../src/base/errors.ts';
import { createHttpServer, listen, roleRules } from '../src/http/http-server.ts';
import { createLogger, type Logger } from '../src/base/log.ts';
import type { RunningServer } from '../src/http/running-server.ts';
import { agentFor } from '../src/clients/http-client.ts';
import { BlockStore } from './block-store.ts';
import { ClusterClock } from './cluster-clock.ts';
import { ClusterIdentity } from './cluster-identity.ts';
import { EpochFence } from './epoch-fence.ts';
import { installEpochFence } from './epoch-route.ts';
import type { DataserverConfig } from './config.ts';
import { startHeartbeat, type HeartbeatLoop } from './heartbeat.ts';
import { registerDataserverRoutes } from './http-api.ts';
import { installNeedleReadRoute } from './needle-read-route.ts';

export interface DataserverStartOptions {
  log?: Logger;
}

export interface RunningDataserver extends RunningServer {
  id: string;
  store: BlockStore;
  heartbeat: HeartbeatLoop;
  /** <data>/cluster: the cluster this server belongs to, and its high-water marks */
  identity: ClusterIdentity;
  /** <data>/epoch: the highest name-server epoch seen, and the fence it makes */
  fence: EpochFence;
  clock: ClusterClock;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Creates the data directory if needed; an unusable one is a usage error (exit 2). */
function prepareDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `data directory ${dir} is not a writable directory (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The data server's identity survives restarts and moves: it is kept beside the data. */
function loadOrCreateId(dir: string, wanted: string): string {
  const file = join(dir, 'id');
  let existing: string | undefined;
  try {
    existing = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing) {
    if (wanted && wanted !== existing) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--id ${wanted} differs from the id ${existing} stored in ${file}`);
    return existing;
  }
  if (wanted && !ID_PATTERN.test(wanted)) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--id must be 1-64 characters of A-Z a-z 0-9 _ . -');
  const id = wanted || `ds-${randomBytes(4).toString('hex')}`;
  writeFileSync(file + '.tmp', id + '\n');
  renameSync(file + '.tmp', file);
  return id;
}

export async function startDataserver(config: DataserverConfig, opts: DataserverStartOptions = {}): Promise<RunningDataserver> {
  // Calls to the name server and to replicas trust --tls-ca (read now: a bad one stops the start).
  const dispatcher = agentFor(config.tlsCa);
  const dataDir = resolve(config.data);
  prepareDataDir(dataDir);
  const id = loadOrCreateId(dataDir, config.id);
  const log = opts.log ?? createLogger({ name: `dataserver:${id}`, level: config.logLevel });
  const identity = await ClusterIdentity.load(dataDir);
  // One clock per data server: the name server's time (from heartbeat answers) against our
  // own; tombstone expiry follows it (cluster-clock.ts). The offset exists for tests only.
  const offset = config.testClockOffsetMs;
  const clock = new ClusterClock(offset === 0 ? Date.now : () => Date.now() + offset);

  let store: BlockStore | undefined;
  let fence: EpochFence | undefined;
  const server = createHttpServer({
    role: 'dataserver',
    log,
    // every route declares its credential before any body byte is read; the needle writes
    // (ahead of fastify) take up to the block size, every fastify route the default 64 KiB
    clusterSecret: config.clusterSecret,
    originSecret: config.originSecret,
    limits: config,
    tls: config,
    listenHost: config.host,
    ownUrls: [config.publicUrl],
    accessLog: config.accessLog,
    // Process metrics (ugcfs_process_*: CPU, memory, event-loop delay, GC), as the name server
    // and origins have: data servers are where the collector's cost under writes was found.
    defaultMetrics: true,
    health: () => ({ id, blocks: store?.blocks.size ?? 0, cluster: identity.cluster ?? null, epoch: fence?.highest ?? 0, nameserverTime: clock.nameserverNow() !== undefined }),
  });
  try {
    store = await BlockStore.open({
      dir: dataDir,
      fsync: config.fsync,
      directWrites: config.directWrites,
      blockSize: config.blockSize,
      tombstoneKeepMs: config.tombstoneKeepHours * 3_600_000,
      quarantineKeepMs: config.quarantineKeepHours * 3_600_000,
      clock,
      cacheEntries: config.indexCacheEntries,
      indexBlockCacheBytes: config.indexBlockCacheBytes,
      metrics: server.metrics,
      log,
      crashAt: config.testCrashAt,
      syncReads: config.syncReads,
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause;
    if ((err as { code?: string }).code === 'LEVEL_DATABASE_NOT_OPEN' && cause?.code === 'LEVEL_LOCKED') {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `data directory ${dataDir} is in use by another data server`);
    }
    throw err;
  }
  const openStore = store;
  try {
    fence = await EpochFence.load(dataDir, server.metrics);
  } catch (err) {
    await openStore.close();
    throw err;
  }
  server.onScrape(() => openStore.updateGauges());
  const { access } = server;
  const rules = roleRules(config.clusterSecret, config.originSecret);
  registerDataserverRoutes(server.app, { identity, store: openStore, secret: config.clusterSecret, rules, dispatcher, blockSize: config.blockSize, metrics: server.metrics, log, access, bodyPoolBytes: config.writeBufferPoolBytes });
  installNeedleReadRoute(server.app, { store: openStore, rule: rules.file, metrics: server.metrics, log, access, poolBytes: config.readBufferPoolBytes });
  // last, so it is asked first: ahead of every route, fastify's and the needle routes alike
  installEpochFence(server.app, { fence, rule: rules.internal, metrics: server.metrics, log, access });

  let url: string;
  try {
    url = await listen(server.app, config.host, config.port);
  } catch (err) {
    await openStore.close();
    throw err;
  }
  const publicUrl = config.publicUrl || url;
  const heartbeat = startHeartbeat({
    id,
    url: publicUrl,
    rack: config.rack,
    nameserver: config.nameserver,
    secret: config.clusterSecret,
    dispatcher,
    intervalMs: config.heartbeatMs,
    dataDir,
    blockSize: config.blockSize,
    store: openStore,
    metrics: server.metrics,
    log,
    identity,
    fence,
    clock,
  });

  let closing: Promise<void> | undefined;
  return {
    url: publicUrl,
    id,
    store: openStore,
    heartbeat,
    identity,
    fence,
    clock,
    close() {
      closing ??= (async () => {
        await heartbeat.stop();
        // waits for the reads and writes answered ahead of fastify too (src/http/ahead-route.ts)
        await server.app.close();
        await openStore.close();
      })();
      return closing;
    },
  };
}
