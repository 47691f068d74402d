// The name server's own HTTP routes (NS_ROUTES of src/wire/protocol.ts). Internal routes need
// the cluster secret; admin views accept the admin token too. Each route declares which
// (config.auth), checked before its body is read (src/http/request-gate.ts).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UgcfsError, isErrorCode, type ErrorCode } from '../src/base/errors.ts';
import { decodeFid } from '../src/wire/file-id.ts';
import { NS_ROUTES, type WriteFailedReply } from '../src/wire/protocol.ts';
import { dataserverStatus } from './cluster-status.ts';
import type { NameserverContext } from './context.ts';
import type { HeartbeatHandler } from './heartbeat.ts';

const INTERNAL = { config: { auth: 'internal' } };
const ADMIN = { config: { auth: 'admin' } };
/** the file routes an origin calls: its credential (--origin-secret) reaches these, as the cluster secret does */
const FILE = { config: { auth: 'file' } };
/** who leads: every credential of the cluster may ask (clients look for the leader first) */
const LOOKUP = { config: { auth: 'lookup' } };
/**
 * A heartbeat carries at most one page of a full block report (20,000 blocks, ~2.6 MiB) or a
 * delta; 16 MiB leaves room for a plain `blocks` list of some 100,000 (simple senders).
 */
const HEARTBEAT = { config: { auth: 'internal' }, bodyLimit: 16 * 1024 * 1024 };

/** fids one assign may hand out (a client batching its writes asks for several) */
const MAX_ASSIGN_COUNT = 100;

function blockIdParam(req: FastifyRequest): number {
  const raw = (req.params as { id?: string }).id ?? '';
  if (!/^\d{1,10}$/.test(raw) || Number(raw) > 0xffffffff) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', `block id must be a decimal number, got ${JSON.stringify(raw.slice(0, 40))}`);
  return Number(raw);
}

/**
 * The code a write failed with (WriteFailedReport.code). A report without one comes from a
 * client older than the field, which sent the code only as the start of its reason: read it
 * there, for those clients alone.
 */
function writeFailureCode(body: Record<string, unknown>): ErrorCode | undefined {
  if (body.code !== undefined) {
    if (!isErrorCode(body.code)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'code must be a UGCFS_ERR_* code');
    return body.code;
  }
  const legacy = typeof body.reason === 'string' ? /^(UGCFS_ERR_[A-Z_]+)/.exec(body.reason)?.[1] : undefined;
  return isErrorCode(legacy) ? legacy : undefined;
}

function objectBody(req: FastifyRequest): Record<string, unknown> {
  const b = req.body ?? {};
  if (typeof b !== 'object' || Array.isArray(b)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'body must be a JSON object');
  return b as Record<string, unknown>;
}

export function registerCoreRoutes(app: FastifyInstance, ctx: NameserverContext, heartbeats: HeartbeatHandler): void {
  app.get(NS_ROUTES.leader, LOOKUP, async () => {
    return ctx.leadership.status();
  });

  app.post(NS_ROUTES.heartbeat, HEARTBEAT, async (req) => {
    return heartbeats.handle(req.body);
  });

  app.post(NS_ROUTES.assign, FILE, async (req) => {
    const body = objectBody(req);
    const replicas = body.replicas ?? ctx.config.replicas;
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 1 || replicas > 8) {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'replicas must be an integer from 1 to 8');
    }
    const count = body.count ?? 1;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_ASSIGN_COUNT) {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', `count must be an integer from 1 to ${MAX_ASSIGN_COUNT}`);
    }
    return ctx.allocator.assign(replicas, count);
  });

  app.get(NS_ROUTES.block, FILE, async (req) => {
    const id = blockIdParam(req);
    // A standby may not have seen a block the leader made a moment ago: the leader answers.
    if (!ctx.blocks.has(id) && !ctx.leadership.isLeader()) ctx.leadership.requireLeader();
    // A server owing deletes in this block is left out of reads until they are replayed.
    return ctx.blocks.location(id, Date.now(), (ds) => ctx.pendingDeletes.owes(ds.id, id));
  });

  app.post(NS_ROUTES.blockWriteFailed, FILE, async (req) => {
    const id = blockIdParam(req);
    const body = objectBody(req);
    if (body.dsId !== undefined) {
      if (typeof body.dsId !== 'string') throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'dsId must be a string');
      ctx.registry.require(body.dsId);
    }
    const code = writeFailureCode(body);
    const rec = ctx.blocks.require(id);
    const reason = typeof body.reason === 'string' ? body.reason.slice(0, 200) : 'unspecified';
    if (rec.state === 'writable') {
      // A full block is simply sealed; anything else means its replicas may disagree.
      await ctx.blocks.setState(id, code === 'UGCFS_ERR_BLOCK_READONLY' ? 'sealed' : 'failed');
      ctx.log.warn({ block: id, ds: body.dsId, code, reason }, 'a write failed; block takes no more writes');
    }
    const reply: WriteFailedReply = { ok: true, block: id, state: ctx.blocks.stateOf(ctx.blocks.require(id)) };
    return reply;
  });

  // One handler for both spellings: /deletes {fid} and the older /blocks/:id/missed-deletes.
  const recordDelete = async (req: FastifyRequest, blockFromPath: number | undefined) => {
    const body = objectBody(req);
    if (typeof body.fid !== 'string') throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'fid must be a string');
    const fid = decodeFid(body.fid);
    const id = blockFromPath ?? fid.block;
    if (fid.block !== id) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', `fid is in block ${fid.block}, not ${id}`);
    const missed = body.dataservers ?? [];
    if (!Array.isArray(missed) || !missed.every((d) => typeof d === 'string')) {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'dataservers must be an array of data server ids');
    }
    ctx.blocks.require(id);
    const ids = missed as string[];
    for (const ds of ids) ctx.registry.require(ds);
    ctx.blocks.noteBusyDelete(id, body.fid);
    for (const ds of ids) await ctx.pendingDeletes.add(ds, body.fid, id);
    const seq = await ctx.deleteFeed.record(body.fid);
    return { ok: true, pending: ids.length, seq };
  };

  app.post(NS_ROUTES.blockMissedDeletes, FILE, async (req) => recordDelete(req, blockIdParam(req)));
  app.post(NS_ROUTES.deletes, FILE, async (req) => recordDelete(req, undefined));

  app.get(NS_ROUTES.deletes, FILE, async (req) => {
    const after = (req.query as { after?: unknown }).after;
    if (after !== undefined && (typeof after !== 'string' || !/^\d{1,15}$/.test(after))) {
      throw new UgcfsError('UGCFS_ERR_BAD_PARAM', '?after= must be a sequence number');
    }
    return ctx.deleteFeed.since(after === undefined ? undefined : Number(after));
  });

  app.get(NS_ROUTES.status, ADMIN, async () => {
    return ctx.status();
  });

  app.get(NS_ROUTES.dataservers, ADMIN, async () => {
    return (await ctx.status()).dataservers;
  });

  app.get(NS_ROUTES.dataserver, ADMIN, async (req) => {
    // One server: its own copies counted (O(its copies)), not the whole cluster's.
    const e = ctx.registry.require((req.params as { id: string }).id);
    return dataserverStatus(ctx.registry, e, ctx.blocks.countHeld(e));
  });

  app.delete(NS_ROUTES.dataserver, ADMIN, async (req, reply) => {
    await ctx.registry.forget((req.params as { id: string }).id);
    reply.code(204).send();
  });
}
