// Upload quotas (NS_ROUTES.quota): bytes stored per upload owner, counted here so the count
// survives an origin restart and every origin of the cluster shares it. Origins add an
// upload's bytes before storing it (refused past their --quota-bytes) and take a delete's
// bytes off again; the owner is the one-way id of the upload token (origin/upload-auth.ts),
// never the token. Counts live in the metadata store's `quota` namespace, so a group of
// name servers shares them too; only the leader answers (the routes are not standby reads).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { NS_ROUTES, type QuotaChange, type QuotaUsage } from '../src/wire/protocol.ts';
import type { NameserverContext } from './context.ts';

/** an origin charges and reads its uploaders' usage with its own credential */
const FILE = { config: { auth: 'file' } };

export type QuotaRouteContext = Pick<NameserverContext, 'namespace'>;

interface QuotaRecord {
  used: number;
  /** ms since epoch of the last change */
  updatedAt: number;
}

const OWNER = /^[A-Za-z0-9_-]{1,64}$/;

function ownerParam(req: FastifyRequest): string {
  const owner = (req.params as { id?: string }).id ?? '';
  if (!OWNER.test(owner)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'the owner id must be 1-64 of A-Z a-z 0-9 _ -');
  return owner;
}

function isByteCount(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n);
}

export function register(app: FastifyInstance, ctx: QuotaRouteContext): void {
  const ns = ctx.namespace<QuotaRecord>('quota');
  // One change per owner at a time: a read-modify-write, and this leader is the only writer.
  const queues = new Map<string, Promise<unknown>>();
  const serially = <T>(owner: string, job: () => Promise<T>): Promise<T> => {
    const prev = queues.get(owner) ?? Promise.resolve();
    const next = prev.then(job, job);
    const tail = next.catch(() => undefined);
    queues.set(owner, tail);
    void tail.then(() => {
      if (queues.get(owner) === tail) queues.delete(owner);
    });
    return next;
  };

  app.get(NS_ROUTES.quota, FILE, async (req): Promise<QuotaUsage> => {
    const owner = ownerParam(req);
    return { owner, used: (await ns.get(owner))?.used ?? 0 };
  });

  app.post(NS_ROUTES.quota, FILE, async (req): Promise<QuotaUsage> => {
    const owner = ownerParam(req);
    const body = req.body as Partial<QuotaChange> | undefined;
    if (!body || !isByteCount(body.delta) || (body.limit !== undefined && (!isByteCount(body.limit) || body.limit < 0))) {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'body must be JSON {delta: bytes, limit?: bytes}');
    }
    const { delta, limit } = body;
    return serially(owner, async () => {
      const used = (await ns.get(owner))?.used ?? 0;
      if (delta > 0 && limit !== undefined && used + delta > limit) {
        throw new UgcfsError('UGCFS_ERR_QUOTA_EXCEEDED', `this upload token stores ${used} of its ${limit} bytes; ${delta} more do not fit`);
      }
      // Never below zero: files stored before quotas were counted are deleted uncounted.
      const next = Math.max(0, used + delta);
      if (next === 0) await ns.del(owner);
      else await ns.put(owner, { used: next, updatedAt: Date.now() });
      return { owner, used: next };
    });
  });
}
