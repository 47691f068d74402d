// Admin endpoints of the legacy table (NS_ROUTES.legacy). Origins look paths up with the
// cluster secret; operators and `ugcfs migrate` may also use the admin token.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { NS_ROUTES, type LegacyPut } from '../src/wire/protocol.ts';
import type { NameserverContext } from './context.ts';
import { LegacyTable, type LegacyRecord } from './legacy-table.ts';

/** every verb: the admin token or the cluster secret, checked before the body is read (the handlers ask again) */
const ADMIN = { config: { auth: 'admin' } };
/** reading and adding mappings: what an origin's read-through and import do, with its own credential */
const LOOKUP = { config: { auth: 'lookup' } };

export type LegacyRouteContext = Pick<NameserverContext, 'namespace' | 'requireAdmin'>;

function queryString(req: FastifyRequest, name: string): string | undefined {
  const v = (req.query as Record<string, unknown> | undefined)?.[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', `query parameter ${name} must be given once`);
  return v;
}

export function register(app: FastifyInstance, ctx: LegacyRouteContext): LegacyTable {
  const table = new LegacyTable(ctx.namespace<LegacyRecord>('legacy'));

  app.get(NS_ROUTES.legacy, LOOKUP, async (req) => {
    const path = queryString(req, 'path');
    if (path === undefined) {
      const limitText = queryString(req, 'limit');
      const limit = limitText === undefined ? undefined : Number(limitText);
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1)) throw new UgcfsError('UGCFS_ERR_BAD_PARAM', 'limit must be a positive integer');
      return table.list({ prefix: queryString(req, 'prefix'), after: queryString(req, 'after'), limit });
    }
    const m = await table.get(path);
    if (!m) throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND', 'legacy path is not mapped');
    return m;
  });

  app.put(NS_ROUTES.legacy, LOOKUP, async (req) => {
    const body = req.body as Partial<LegacyPut> | undefined;
    if (!body || typeof body !== 'object' || typeof body.path !== 'string' || typeof body.fid !== 'string') {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'body must be JSON {path, fid, sha256?, size?, ifAbsent?}');
    }
    const { mapping } = await table.set({
      path: body.path,
      fid: body.fid,
      ...(body.sha256 !== undefined ? { sha256: body.sha256 } : {}),
      ...(body.size !== undefined ? { size: body.size } : {}),
      ifAbsent: body.ifAbsent === true,
    });
    return mapping;
  });

  app.delete(NS_ROUTES.legacy, ADMIN, async (req, reply) => {
    ctx.requireAdmin(req);
    const path = queryString(req, 'path');
    if (path === undefined) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'query parameter path is required');
    if (!(await table.delete(path))) throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND', 'legacy path is not mapped');
    reply.code(204).send();
  });

  return table;
}
