// Builds a name server instance: state, HTTP routes, route modules, leadership and the
// maintenance loop (liveness, repair, missed-delete replay, gauges). No process-global
// state: the all-in-one server may run it beside other roles.
//
// The state lives in a metadata store (metadata-store/): the embedded LevelDB of a single
// name server, which always leads, or etcd shared by a group of name servers, one leading
// (leadership.ts) and the others warm standbys following the state (state-follow.ts).
// Everything in memory is loaded without writing; what a new leader must settle (ids,
// creations a dead leader left half done) is done by the take-over hooks before it acts.
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { MAX_KEY } from '../src/wire/file-id.ts';
import { createHttpServer, roleRules } from '../src/http/http-server.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { NS_ROUTES, type ClusterStatus } from '../src/wire/protocol.ts';
import { bearer, credentialOf, CredentialRule } from '../src/base/secret.ts';
import { parseEtcdEndpoints } from '../src/clients/etcd-client.ts';
import { agentFor } from '../src/clients/http-client.ts';
import { Allocator, MAX_BLOCK_ID } from './allocator.ts';
import { BlockMap, type BlockRecord } from './block-map.ts';
import { clusterStatus } from './cluster-status.ts';
import { DeleteFeed } from './delete-feed.ts';
import type { NameserverConfig } from './config.ts';
import type { NameserverContext, RouteModule } from './context.ts';
import { registerCoreRoutes } from './core-routes.ts';
import { ClusterIdentity } from './cluster-id.ts';
import { dataserverClient } from './dataservers.ts';
import { ForeignServers, HeartbeatHandler } from './heartbeat.ts';
import { EtcdLeadership, SoloLeadership, type Leadership } from './leadership.ts';
import { defaultEtcdPrefix, EtcdMetadataStore, LevelMetadataStore, type MetadataStore } from './metadata-store/index.ts';
import { PendingDeletes } from './pending-deletes.ts';
import { Registry } from './registry.ts';
import { ReportWait } from './report-wait.ts';
import { Repairer } from './repair.ts';
import { BlockSweep } from './block-sweep.ts';
import { CopyOrders } from './copy-orders.ts';
import { ReportIntake } from './report-intake.ts';
import { registerRoutes, ROUTE_MODULES } from './routes.ts';
import { PersistedSequence } from './sequence.ts';
import { importState } from './state-import.ts';
import { openStateDb } from './state-db.ts';
import { StateFollower } from './state-follow.ts';
import { guardStatusPage } from './status-page.ts';

export interface NameserverInstance {
  app: FastifyInstance;
  ctx: NameserverContext;
  /** call once listening at `url`: a group member campaigns; the maintenance loop starts */
  start(url: string): Promise<void>;
  close(): Promise<void>;
}

export interface CreateNameserverOptions {
  /** the route modules registered after the core routes (default: nameserver/routes.ts) */
  routes?: readonly RouteModule[];
  /** the shared state can no longer be followed (default: log and SIGTERM this process) */
  onFatal?: (why: string) => void;
}

/** The routes a standby answers itself (reads that never wait for an election); all others need the leader. */
const STANDBY_SERVES: ReadonlySet<string> = new Set([
  `GET ${NS_ROUTES.block}`,
  `GET ${NS_ROUTES.legacy}`,
  `GET ${NS_ROUTES.deletes}`,
  `POST ${NS_ROUTES.heartbeat}`,
  `GET ${NS_ROUTES.leader}`,
  `GET ${NS_ROUTES.status}`,
  `GET ${NS_ROUTES.dataservers}`,
  `GET ${NS_ROUTES.dataserver}`,
  `GET ${NS_ROUTES.page}`,
  'GET /healthz',
  'GET /metrics',
]);

interface Backend {
  /** the store every component writes through (on etcd: fenced by the leadership) */
  store: MetadataStore;
  leadership: Leadership;
  /** etcd: the follower, started once the state is loaded */
  follower?: StateFollower;
  /** etcd: the revision read before loading */
  loadedAt: number;
  close(): Promise<void>;
}

async function openBackend(config: NameserverConfig, log: Logger, metrics: () => Metrics, onFatal: (why: string) => void): Promise<Backend> {
  if (config.etcd === '') {
    if (config.importState !== '') throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'option --import-state needs --etcd (it moves a LevelDB state into etcd)');
    if (config.data === '') throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'option --data is required, unless the state is in etcd (--etcd)');
    const db = await openStateDb(join(config.data, 'state'));
    return { store: LevelMetadataStore.wrap(db), leadership: new SoloLeadership(config.advertiseUrl), loadedAt: 0, close: () => db.close() };
  }
  const base = await EtcdMetadataStore.open({ endpoints: parseEtcdEndpoints(config.etcd), prefix: config.etcdPrefix || defaultEtcdPrefix() });
  try {
    if (config.importState !== '') await importState(base, config.importState, log);
    let leadership!: EtcdLeadership;
    const follower = new StateFollower(base, () => !leadership.isLeader(), log, onFatal);
    leadership = new EtcdLeadership({
      store: base,
      self: config.advertiseUrl,
      leaseMs: config.leaseMs,
      log,
      caughtUp: (rev) => follower.caughtUp(rev),
      events: {
        elected: () => metrics().elections.inc(),
        deposed: () => metrics().stepDowns.inc(),
        renewed: (ok) => metrics().leaseRenewals.inc({ result: ok ? 'ok' : 'failed' }),
      },
    });
    const loadedAt = await base.currentRevision();
    return {
      store: base.fenced(() => leadership.writeFence()),
      leadership,
      follower,
      loadedAt,
      close: async () => {
        await follower.close();
        await base.close();
      },
    };
  } catch (err) {
    await base.close();
    throw err;
  }
}

export async function createNameserver(config: NameserverConfig, log: Logger, opts: CreateNameserverOptions = {}): Promise<NameserverInstance> {
  const startedAt = Date.now();
  let metricsRef: Metrics | undefined;
  const onFatal =
    opts.onFatal ??
    ((why: string) => {
      log.fatal({ why }, 'lost track of the shared state; stopping (a restart reloads it)');
      process.exitCode = 1;
      process.kill(process.pid, 'SIGTERM');
    });
  const backend = await openBackend(config, log, () => metricsRef!, onFatal);
  const { store, leadership } = backend;
  // Once route modules may have started timers or work: what a failed start stops, as close() does.
  let stopRoutes = async (): Promise<void> => {};
  try {
    const meta = store.namespace<string>('meta');
    const keys = new PersistedSequence(meta, 'nextKey', BigInt(config.keyLease), MAX_KEY);
    const blockIds = new PersistedSequence(meta, 'nextBlockId', 16n, MAX_BLOCK_ID);
    await keys.open();
    await blockIds.open();
    const registry = new Registry(store.namespace('dataservers'), config.deadAfterMs, startedAt);
    await registry.load();
    // The first client made for this registry is the one every module uses: it stamps the
    // epoch, and trusts --tls-ca.
    dataserverClient(registry, config.clusterSecret, leadership, agentFor(config.tlsCa));
    const blocks = new BlockMap(store.namespace<BlockRecord>('blocks'), registry, Math.max(config.deadAfterMs, 2 * config.heartbeatMs));
    await blocks.load();
    const freshState = blocks.holdingCount === 0;
    // --adopt-blocks on a state that has allocated nothing learns the cluster id from the data servers.
    const identity = await ClusterIdentity.open(meta, { learn: config.adoptBlocks && blocks.size === 0, learnUntil: startedAt + config.startupGraceMs, log });
    const foreign = new ForeignServers();
    const rules = roleRules(config.clusterSecret, config.originSecret);
    const requireInternal = (req: FastifyRequest) => rules.internal.check(credentialOf(req.headers));
    // Admin views: the admin token (as Bearer) or the cluster secret. Lookups (who leads,
    // legacy mappings read or added): those, or the origins' credential.
    const admin = new CredentialRule([config.adminToken, config.clusterSecret], [config.originSecret]);
    const lookup = new CredentialRule([config.adminToken, config.clusterSecret, config.originSecret]);
    const either = (rule: CredentialRule) => (req: FastifyRequest) => {
      if (!rule.accepts(bearer(req.headers.authorization))) rule.check(credentialOf(req.headers));
    };
    const requireAdmin = either(admin);
    const base = createHttpServer({
      role: 'nameserver',
      log,
      // each route declares its credential and, when it takes more than 64 KiB, its body limit
      clusterSecret: config.clusterSecret,
      originSecret: config.originSecret,
      auth: { admin: requireAdmin, lookup: either(lookup), 'status-page': (req) => guardStatusPage(req, { config, requireAdmin }) },
      limits: config,
      tls: config,
      listenHost: config.host,
      ownUrls: [config.advertiseUrl],
      defaultMetrics: true,
      accessLog: config.accessLog,
      health: () => ({ dataserversAlive: registry.alive().length, blocks: blocks.holdingCount }),
    });
    const { app, metrics } = base;
    metricsRef = metrics;
    app.addHook('onRequest', async (req) => {
      const route = req.routeOptions.url;
      if (route === undefined || leadership.isLeader()) return;
      if (STANDBY_SERVES.has(`${req.method === 'HEAD' ? 'GET' : req.method} ${route}`)) return;
      metrics.notLeaderAnswers.inc();
      leadership.requireLeader();
    });
    const pending = new PendingDeletes(store.namespace('pending-deletes'), registry, config.clusterSecret, log);
    await pending.load();
    const deleteFeed = new DeleteFeed(store.namespace('delete-feed'));
    await deleteFeed.load();
    if (backend.follower) {
      const f = backend.follower;
      f.on('blocks', (k, v) => blocks.apply(k, v));
      f.on('dataservers', (k, v) => registry.apply(k, v));
      f.on('pending-deletes', (k, v) => pending.apply(k, v));
      f.on('delete-feed', (k, v) => deleteFeed.apply(k, v));
      f.on('meta', (k, v) => {
        if (k === 'nextKey') keys.follow(v);
        else if (k === 'nextBlockId') blockIds.follow(v);
        else identity.apply(k, v);
      });
      f.start(backend.loadedAt);
    }
    const orders = new CopyOrders({ blocks, registry, pending, log, isLeader: () => leadership.isLeader() });
    const intake = new ReportIntake(
      blocks,
      registry,
      {
        fullRequested: (reason) => metrics.reportFullRequests.inc({ reason }),
        applied: (kind, entries) => {
          metrics.reportMessages.inc({ kind });
          metrics.reportEntries.inc(entries);
        },
      },
      { fullAtOnce: config.fullReportsAtOnce, turnTimeoutMs: Math.max(15_000, 4 * config.heartbeatMs) },
    );
    blocks.onChange((id) => {
      if (leadership.isLeader()) void orders.evaluateBlock(id).catch((err: unknown) => log.warn({ block: id, err: (err as Error).message }, 'could not decide orders for a block'));
    });
    blocks.onMoved((block, version) => {
      deleteFeed.recordMove(block, version).catch((err: unknown) => log.warn({ block, version, err: (err as Error).message }, 'could not record a block move in the delete feed; clients drop the cached location when a read misses'));
    });
    const sweep = new BlockSweep(blocks, orders, log);
    // What a new leader settles before acting (a single name server: at start). Every data
    // server sends it a full report first: what it saw as a standby may lag.
    leadership.onPromote(() => {
      intake.resetAll();
      orders.clear();
    });
    leadership.onPromote(() => identity.takeOver());
    leadership.onPromote(() => registry.takeOver());
    leadership.onPromote(() => blocks.takeOver());
    leadership.onPromote(() => deleteFeed.takeOver());
    const allocator = new Allocator({ blocks, registry, keys, blockIds, secret: config.clusterSecret, log, metrics, writableBlocks: config.writableBlocks, createNotBefore: config.adoptBlocks ? startedAt + config.startupGraceMs : 0, identity });
    const reportWait = new ReportWait({
      startedAt,
      graceMs: config.startupGraceMs,
      deadAfterMs: config.deadAfterMs,
      maxMs: config.reportWaitMs,
      pending: (now) => registry.alive(now).some((d) => !intake.reportedWhole(d.id)),
      ended: (ms, timedOut) =>
        timedOut
          ? log.warn({ ms }, 'repair starts before every live data server\'s full block report is in (--report-wait-ms ran out)')
          : log.info({ ms }, 'every live data server\'s full block report is in; repair may start'),
    });
    leadership.onPromote(() => reportWait.restart(Date.now()));
    const repairer = new Repairer({
      blocks,
      registry,
      pending,
      log,
      metrics,
      secret: config.clusterSecret,
      repairDelayMs: config.repairDelayMs,
      concurrency: config.repairConcurrency,
      heartbeatMs: config.heartbeatMs,
      reportedWhole: (id) => intake.reportedWhole(id),
      heldOff: (now) => reportWait.held(now),
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
      store,
      namespace: (name) => store.namespace(name),
      leadership,
      registry,
      blocks,
      allocator,
      repairer,
      pendingDeletes: pending,
      deleteFeed,
      log,
      metrics,
      startedAt,
      requireInternal,
      requireAdmin,
      status: async () => {
        const s = clusterStatus(registry, blocks, config.replicas);
        const cluster = identity.clusterId;
        if (cluster !== undefined) s.cluster = cluster;
        s.foreignDataservers = foreign.list();
        // etcd unreachable: this name server alone, as it sees itself.
        s.nameservers = await leadership.members().catch(() => [{ url: leadership.self, role: leadership.status().role, epoch: leadership.epoch(), alive: true }]);
        for (const h of statusHooks) await h(s);
        return s;
      },
      onStatus: (fn) => void statusHooks.push(fn),
      onClose: (fn) => void closers.push(fn),
    };

    registerCoreRoutes(app, ctx, new HeartbeatHandler({ blocks, registry, pending, log, blockIds, keys, identity, foreign, adopt: config.adoptBlocks, freshState, replicas: config.replicas, deleteFeed, leadership, intake, orders }));
    await registerRoutes(app, ctx, opts.routes ?? ROUTE_MODULES);
    // A single name server leads from here; a group member campaigns once it is listening (start()).
    if (leadership.kind === 'solo') await leadership.start();

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
      blocks.tick(now);
      const leading = leadership.isLeader();
      sweep.tick(leading);
      metrics.underReplicated.set(blocks.underReplicatedCount(now));
      metrics.blockTableBytes.set(blocks.tableBytes());
      metrics.nameserverLeader.set(leading ? 1 : 0);
      metrics.nameserverEpoch.set(leadership.epoch());
      if (!leading) return;
      repairer.tick(now);
      void pending.replay(now);
    };

    return {
      app,
      ctx,
      async start(url: string) {
        if (leadership.self === '') leadership.self = url;
        if (leadership.kind === 'etcd') await leadership.start();
        timer ??= setInterval(loop, Math.min(500, Math.max(25, Math.floor(config.heartbeatMs / 2))));
      },
      async close() {
        if (timer) clearInterval(timer);
        // Resign first: a standby takes over while this one finishes.
        await leadership.close();
        await stopRoutes();
        await backend.close();
      },
    };
  } catch (err) {
    await stopRoutes();
    await leadership.close();
    await backend.close();
    throw err;
  }
}
