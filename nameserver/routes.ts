// The name server's route modules, registered after the core routes in this order. Each
// exports `register(app, ctx)` (nameserver/context.ts). The list is plain imports, so a
// module that does not load stops the name server from starting, and one that throws while
// registering fails the start with its name: an ops API that answers 404 while /healthz
// says ok cannot happen. A new module is added here.
import type { FastifyInstance } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import type { NameserverContext, RouteModule } from './context.ts';
import * as legacyRoutes from './legacy-routes.ts';
import * as opsRoutes from './ops-routes.ts';
import * as quotaRoutes from './quota-routes.ts';
import * as statusPage from './status-page.ts';

export const ROUTE_MODULES: readonly RouteModule[] = [
  { name: 'legacy-routes', register: legacyRoutes.register },
  { name: 'ops-routes', register: opsRoutes.register },
  { name: 'quota-routes', register: quotaRoutes.register },
  { name: 'status-page', register: statusPage.register },
];

/** Registers each module in order; the first that throws fails the whole registration, naming it. */
export async function registerRoutes(app: FastifyInstance, ctx: NameserverContext, modules: readonly RouteModule[]): Promise<void> {
  for (const m of modules) {
    try {
      await m.register(app, ctx);
    } catch (err) {
      throw new UgcfsError('UGCFS_ERR_INTERNAL', `name server route module ${m.name} failed to register: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    ctx.log.debug({ module: m.name }, 'name server route module registered');
  }
}
