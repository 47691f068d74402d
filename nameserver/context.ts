// What the name server hands to its route modules (nameserver/legacy-routes.ts,
// nameserver/ops-routes.ts, nameserver/status-page.ts). Each exports `register(app, ctx)`;
// nameserver/routes.ts lists them and nameserver/server.ts registers that list at start.
// See docs/NAMESERVER.md "Route modules".
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { ClusterStatus } from '../src/wire/protocol.ts';
import type { Allocator } from './allocator.ts';
import type { BlockMap } from './block-map.ts';
import type { NameserverConfig } from './config.ts';
import type { DeleteFeed } from './delete-feed.ts';
import type { PendingDeletes } from './pending-deletes.ts';
import type { Registry } from './registry.ts';
import type { Repairer } from './repair.ts';
import type { Leadership } from './leadership.ts';
import type { MetadataStore, Namespace } from './metadata-store/index.ts';

export interface NameserverContext {
  readonly config: NameserverConfig;
  /** the metadata store (LevelDB, or etcd shared by a group); keep your state in your own namespace (see namespace()) */
  readonly store: MetadataStore;
  /** a JSON-valued namespace; names taken by the core: meta, blocks, dataservers, pending-deletes, delete-feed (and legacy, ops, quota) */
  namespace<V>(name: string): Namespace<V>;
  /** who leads; a module's leader-only work starts in onPromote (a single name server: at start) and stops in onDemote */
  readonly leadership: Leadership;
  /** data servers: identity, liveness, space, last block report; require(id) throws UGCFS_ERR_DATASERVER_NOT_FOUND */
  readonly registry: Registry;
  /** allocated blocks, replica sets, live holders, busy marks (no writes / no reconciliation while busy) */
  readonly blocks: BlockMap;
  readonly allocator: Allocator;
  readonly repairer: Repairer;
  readonly pendingDeletes: PendingDeletes;
  /** every delete reported by clients, by sequence number (GET /deletes?after=) */
  readonly deleteFeed: DeleteFeed;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** ms timestamp when this name server started */
  readonly startedAt: number;
  /** throws 401 unless the request carries the cluster secret */
  requireInternal(req: FastifyRequest): void;
  /** throws 401 unless the request carries the admin token or the cluster secret */
  requireAdmin(req: FastifyRequest): void;
  /** the current ClusterStatus (GET /status) */
  status(): Promise<ClusterStatus>;
  /** lets a module add to GET /status (e.g. ops fills `operations`) */
  onStatus(fn: (status: ClusterStatus) => void | Promise<void>): void;
  /** runs at shutdown, before the store closes (stop timers, finish work) */
  onClose(fn: () => Promise<void> | void): void;
}

/** The shape every route module exports. */
export type RegisterFn = (app: FastifyInstance, ctx: NameserverContext) => unknown;

/** One entry of the name server's route module list (nameserver/routes.ts). */
export interface RouteModule {
  /** named in the start-up error when register throws */
  name: string;
  register: RegisterFn;
}
