// Builds a name server instance: state, HTTP routes, route modules, and the
// maintenance loop (liveness, repair, missed-delete replay, gauges). No process-global
// state: the all-in-one server may run it beside other roles.
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { MAX_KEY } from '../src/wire/file-id.ts';
import { createHttpServer, requireClusterSecret } from '../src/http/http-server.ts';
import type { Logger } from '../src/base/log.ts';
import type { ClusterStatus } from '../src/wire/protocol.ts';
import { bearer, secretEquals } from '../src/base/secret.ts';
import { Allocator, MAX_BLOCK_ID } from './allocator.ts';
import { BlockMap, type BlockRecord } from './block-map.ts';
import { clusterStatus } from './cluster-status.ts';
import { DeleteFeed } from './delete-feed.ts';
import type { NameserverConfig } from './config.ts';
import type { NameserverContext, RouteModule } from './context.ts';
import { registerCoreRoutes } from './core-routes.ts';
import { ClusterIdentity } from './cluster-id.ts';
import { ForeignServers, HeartbeatHandler } from './heartbeat.ts';
import { PendingDeletes } from './pending-deletes.ts';
import { Registry } from './registry.ts';
import { Repairer } from './repair.ts';
import { registerRoutes, ROUTE_MODULES } from './routes.ts';
import { PersistedSequence } from './sequence.ts';
import { jsonSublevel, openStateDb, type RootDb } from './state-db.ts';

export interface NameserverInstance {
  app: FastifyInstance;
  ctx: NameserverContext;
  /** starts the maintenance loop (call once listening) */
  startLoop(): void;
  close(): Promise<void>;
}

export interface CreateNameserverOptions {
  /** the route modules registered after the core routes (default: nameserver/routes.ts) */
  routes?: readonly RouteModule[];
}

export async function createNameserver(config: NameserverConfig, log: Logger, opts: CreateNameserverOptions = {}): Promise<NameserverInstance> {
  const startedAt = Date.now();
  const db: RootDb = await openStateDb(join(config.data, 'state'));
  // Once route modules may have started timers or work: what a failed start stops, as close() does.
  let stopRoutes = async (): Promise<void> => {};
  try {
    const meta = jsonSublevel<string>(db, 'meta');
    const keys = new PersistedSequence(meta, 'nextKey', BigInt(config.keyLease), MAX_KEY);
    const blockIds = new PersistedSequence(meta, 'nextBlockId', 16n, MAX_BLOCK_ID);
    await keys.open();
    await blockIds.open();
    const registry = new Registry(jsonSublevel(db, 'dataservers'), config.deadAfterMs, startedAt);
    await registry.load();
    const blocks = new BlockMap(jsonSublevel<BlockRecord>(db, 'blocks'), registry, Math.max(config.deadAfterMs, 2 * config.heartbeatMs));
    await blocks.load();
    const freshState = blocks.all().length === 0;
    // --adopt-blocks on a state that has allocated nothing learns the cluster id from the data servers.
    const identity = await ClusterIdentity.open(meta, { learn: config.adoptBlocks && blocks.size === 0, learnUntil: startedAt + config.startupGraceMs, log });
    const foreign = new ForeignServers();
    const base = createHttpServer({
      role: 'nameserver',
      log,
      bodyLimit: 16 * 1024 * 1024,
      defaultMetrics: true,
      accessLog: config.accessLog,
      health: () => ({ dataserversAlive: registry.alive().length, blocks: blocks.all().length }),
    });
    const { app, metrics } = base;
    const pending = new PendingDeletes(jsonSublevel(db, 'pending-deletes'), registry, config.clusterSecret, log);
    await pending.load();
    const deleteFeed = new DeleteFeed(jsonSublevel(db, 'delete-feed'));
    await deleteFeed.load();
    const allocator = new Allocator({ blocks, registry, keys, blockIds, secret: config.clusterSecret, log, metrics, writableBlocks: config.writableBlocks, createNotBefore: config.adoptBlocks ? startedAt + config.startupGraceMs : 0, identity });
    const repairer = new Repairer({
      blocks,
      registry,
      pending,
      log,
      metrics,
      secret: config.clusterSecret,
      repairDelayMs: config.repairDelayMs,
      concurrency: config.repairConcurrency,
      notBefore: startedAt + config.startupGraceMs,
    });
    const statusHooks: Array<(s: ClusterStatus) => void | Promise<void>> = [];
    const closers: Array<() => Promise<void> | void> = [];
    stopRoutes = async () => {
      repairer.close();
      await app.close();
      for (const c of closers) {
        try {
          await c();
        } catch (err) {
          log.error({ err }, 'name server route module failed to close');
        }
      }
    };

    const ctx: NameserverContext = {
      config,
      db,
      sublevel: (name) => jsonSublevel(db, name),
      registry,
      blocks,
      allocator,
      repairer,
      pendingDeletes: pending,
      deleteFeed,
      log,
      metrics,
      startedAt,
      requireInternal: (req) => requireClusterSecret(req, config.clusterSecret),
      requireAdmin: (req) => {
        if (config.adminToken !== '' && secretEquals(bearer(req.headers.authorization), config.adminToken)) return;
        if (config.clusterSecret === '' && config.adminToken !== '') throw new UgcfsError('UGCFS_ERR_UNAUTHORIZED', 'admin token missing or wrong');
        requireClusterSecret(req, config.clusterSecret);
      },
      status: async () => {
        const s = clusterStatus(registry, blocks, config.replicas);
        const cluster = identity.clusterId;
        if (cluster !== undefined) s.cluster = cluster;
        s.foreignDataservers = foreign.list();
        for (const h of statusHooks) await h(s);
        return s;
      },
      onStatus: (fn) => void statusHooks.push(fn),
      onClose: (fn) => void closers.push(fn),
    };

    registerCoreRoutes(app, ctx, new HeartbeatHandler({ blocks, registry, pending, log, blockIds, keys, identity, foreign, adopt: config.adoptBlocks, freshState, replicas: config.replicas, deleteFeed }));
    await registerRoutes(app, ctx, opts.routes ?? ROUTE_MODULES);

    let timer: NodeJS.Timeout | undefined;
    const wasAlive = new Set<string>();
    const loop = () => {
      const now = Date.now();
      const alive = registry.alive(now);
      const aliveIds = new Set(alive.map((d) => d.id));
      for (const id of wasAlive) {
        if (!aliveIds.has(id)) log.warn({ ds: id }, 'data server is dead (no heartbeat)');
      }
      wasAlive.clear();
      for (const id of aliveIds) wasAlive.add(id);
      metrics.dataserversAlive.set(alive.length);
      metrics.clusterBytes.set(alive.reduce((s, d) => s + d.usedBytes, 0));
      metrics.underReplicated.set(blocks.underReplicated(now).length);
      repairer.tick(now);
      void pending.replay(now);
    };

    return {
      app,
      ctx,
      startLoop() {
        timer ??= setInterval(loop, Math.min(500, Math.max(25, Math.floor(config.heartbeatMs / 2))));
      },
      async close() {
        if (timer) clearInterval(timer);
        await stopRoutes();
        await db.close();
      },
    };
  } catch (err) {
    await stopRoutes();
    await db.close();
    throw err;
  }
}
