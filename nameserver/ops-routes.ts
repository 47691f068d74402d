// The name server's operations API (NS_ROUTES.ops / op): POST starts rebalance, drain,
// verify or compact (or answers a dry-run plan), GET lists and follows them, DELETE cancels
// one. Also fills ClusterStatus.operations, and runs compaction and (when configured)
// rebalancing by itself on an interval. See docs/OPERATIONS.md.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { NS_ROUTES, type Operation, type OperationKind } from '../src/wire/protocol.ts';
import type { NameserverContext } from './context.ts';
import { compactBody, compactCandidates } from './ops-compact.ts';
import { opsSettings } from './ops-config.ts';
import { OpsEngine } from './ops-engine.ts';
import { OperationHistory, isFinished } from './ops-history.ts';
import { currentBalancePlan, drainBody, drainPlan, imbalance, planDetails, rebalanceBody } from './ops-moves.ts';
import { verifyBody } from './ops-verify.ts';

/** every ops route: the admin token or the cluster secret, checked before the body is read */
const ADMIN = { config: { auth: 'admin' } };

/** Finished operations stay in `status` this long. */
const RECENT_MS = 10 * 60_000;
const STATUS_MAX = 10;

export interface OpRequest {
  kind: Exclude<OperationKind, 'repair'>;
  dryRun: boolean;
  /** drain only: return the server to service (it takes blocks and writes again) */
  undo: boolean;
  dataserver?: string;
  threshold: number;
  repair: boolean;
  concurrency?: number;
  bytesPerSec?: number;
}

const FIELDS: Record<string, readonly string[]> = {
  rebalance: ['dryRun', 'concurrency', 'bytesPerSec'],
  drain: ['dataserver', 'dryRun', 'undo', 'concurrency', 'bytesPerSec'],
  verify: ['repair', 'concurrency', 'bytesPerSec'],
  compact: ['threshold'],
};

function bad(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_REQUEST', message);
}

/** Checks the whole body before anything starts; unknown fields are refused, not ignored. */
export function parseOpRequest(body: unknown): OpRequest {
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw bad('body must be a JSON object {"kind": ...}');
  const b = body as Record<string, unknown>;
  if (typeof b.kind !== 'string' || !Object.hasOwn(FIELDS, b.kind)) throw bad(`kind must be one of ${Object.keys(FIELDS).join(', ')}`);
  const kind = b.kind as OpRequest['kind'];
  for (const k of Object.keys(b)) if (k !== 'kind' && !FIELDS[kind]!.includes(k)) throw bad(`${kind} takes no field ${JSON.stringify(k.slice(0, 40))}`);
  const bool = (k: string) => {
    if (b[k] !== undefined && typeof b[k] !== 'boolean') throw bad(`${k} must be true or false`);
    return b[k] === true;
  };
  const int = (k: string, min: number, max: number) => {
    const v = b[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(`${k} must be an integer from ${min} to ${max}`);
    return v;
  };
  const out: OpRequest = { kind, dryRun: bool('dryRun'), undo: bool('undo'), repair: bool('repair'), threshold: 0.1 };
  if (kind === 'drain') {
    if (typeof b.dataserver !== 'string' || b.dataserver === '') throw bad('drain needs "dataserver": the id of a data server');
    out.dataserver = b.dataserver;
  }
  if (b.threshold !== undefined) {
    if (typeof b.threshold !== 'number' || !(b.threshold > 0 && b.threshold <= 1)) throw bad('threshold must be a number above 0 and at most 1');
    out.threshold = b.threshold;
  }
  const concurrency = int('concurrency', 1, 64);
  if (concurrency !== undefined) out.concurrency = concurrency;
  const rate = int('bytesPerSec', 0, Number.MAX_SAFE_INTEGER);
  if (rate !== undefined) out.bytesPerSec = rate;
  return out;
}

function recent(history: OperationHistory, now = Date.now()): Operation[] {
  return history
    .list()
    .filter((o) => !isFinished(o) || now - (o.finishedAt ?? o.startedAt) < RECENT_MS)
    .slice(0, STATUS_MAX);
}

function opIdParam(req: FastifyRequest): string {
  return String((req.params as { id?: string }).id ?? '');
}

export async function register(app: FastifyInstance, ctx: NameserverContext): Promise<void> {
  const settings = opsSettings(ctx.config);
  const history = new OperationHistory(ctx.namespace<Operation>('ops'));
  // The leader owns operations: what a stopped leader was running is interrupted.
  ctx.leadership.onPromote(async () => {
    for (const op of await history.load()) ctx.log.warn({ op: op.id, kind: op.kind, done: op.done, total: op.total }, 'operation was interrupted by a name-server stop; run it again to finish');
  });
  const engine = new OpsEngine(ctx, history, settings);

  const startOp = async (r: OpRequest, auto = false): Promise<Operation> => {
    const details: Record<string, unknown> = {};
    if (auto) details.auto = true;
    if (r.concurrency !== undefined) details.concurrency = r.concurrency;
    if (r.bytesPerSec !== undefined) details.bytesPerSec = r.bytesPerSec;
    switch (r.kind) {
      case 'rebalance':
        return engine.start('rebalance', details, rebalanceBody());
      case 'drain':
        return engine.start('drain', { ...details, dataserver: r.dataserver }, drainBody(r.dataserver!));
      case 'verify':
        return engine.start('verify', { ...details, repair: r.repair }, verifyBody(r.repair));
      case 'compact':
        return engine.start('compact', { ...details, threshold: r.threshold }, compactBody(r.threshold));
    }
  };

  app.post(NS_ROUTES.ops, ADMIN, async (req, reply) => {
    const r = parseOpRequest(req.body);
    if (r.kind === 'drain') ctx.registry.require(r.dataserver!);
    if (r.kind === 'drain' && r.undo) {
      // Stops a running drain of it first, so it does not go on moving blocks off.
      for (const o of history.running(['drain'])) if (o.details?.dataserver === r.dataserver) engine.cancel(o.id);
      await ctx.registry.setDraining(r.dataserver!, false);
      ctx.log.info({ ds: r.dataserver }, 'data server returned to service (drain undone)');
      const now = Date.now();
      const undone: Operation = { id: 'undo', kind: 'drain', state: 'done', startedAt: now, finishedAt: now, done: 0, total: 0, bytesDone: 0, message: `${r.dataserver} takes new blocks and writes again`, details: { dataserver: r.dataserver, undo: true } };
      return undone;
    }
    if (r.dryRun) {
      const now = Date.now();
      const details = r.kind === 'drain' ? { dataserver: r.dataserver, moves: drainPlan(ctx, r.dataserver!) } : planDetails(currentBalancePlan(ctx));
      const moves = (details.moves as unknown[]).length;
      const plan: Operation = { id: 'dry-run', kind: r.kind, state: 'planned', startedAt: now, finishedAt: now, done: 0, total: moves, bytesDone: 0, message: `${moves} moves planned (dry run: nothing changed)`, details };
      return plan;
    }
    const op = await startOp(r);
    reply.code(201);
    return op;
  });

  app.get(NS_ROUTES.ops, ADMIN, async () => {
    return history.list().slice(0, 100);
  });

  app.get(NS_ROUTES.op, ADMIN, async (req) => {
    return history.require(opIdParam(req));
  });

  app.delete(NS_ROUTES.op, ADMIN, async (req) => {
    return engine.cancel(opIdParam(req));
  });

  ctx.onStatus((s) => {
    s.operations = recent(history);
  });

  // Background upkeep. Each tick starts at most one operation and only when none of its
  // kind runs; a tick that finds nothing to do leaves no record.
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, busy: OperationKind[], due: () => boolean, r: OpRequest, what: string) => {
    if (ms <= 0) return;
    const t = setInterval(() => {
      if (!ctx.leadership.isLeader() || history.running(busy).length > 0 || !due()) return;
      startOp(r, true).catch((err: Error) => ctx.log.warn({ err: err.message }, `automatic ${what} did not start`));
    }, ms);
    t.unref();
    timers.push(t);
  };
  const request = (kind: OpRequest['kind'], extra: Partial<OpRequest> = {}): OpRequest => ({ kind, dryRun: false, undo: false, repair: false, threshold: 0, ...extra });
  every(settings.compactIntervalMs, ['compact'], () => compactCandidates(ctx, settings.compactThreshold).size > 0, request('compact', { threshold: settings.compactThreshold }), 'compaction');
  every(settings.balanceIntervalMs, ['rebalance', 'drain'], () => {
    const plan = currentBalancePlan(ctx);
    return plan.moves.length > 0 && imbalance(plan) > settings.balanceThreshold;
  }, request('rebalance'), 'rebalance');
  // Anti-entropy: copies left apart by a write or delete that failed half-way are settled
  // without waiting for an operator (deletes win, else the union; ops-key-reconcile.ts).
  every(settings.verifyIntervalMs, ['verify'], () => true, request('verify', { repair: true }), 'verify');
  // After a lost state was rebuilt with --adopt-blocks, the deletes the old state owed to
  // copies that missed them are gone with it, but the tombstones on the copies that got them
  // are not: one verify --repair once the start-up grace is over (every server has reported)
  // settles each adopted block by "deletes win" (docs/NAMESERVER.md, "Losing the state directory").
  if (ctx.config.adoptBlocks) {
    const t = setTimeout(() => {
      if (!ctx.leadership.isLeader() || history.running(['verify']).length > 0) return;
      startOp(request('verify', { repair: true }), true)
        .then((op) => ctx.log.warn({ op: op.id }, '--adopt-blocks: verify --repair started to settle the adopted copies (deletes a copy missed win)'))
        .catch((err: Error) => ctx.log.warn({ err: err.message }, 'verify after adopting did not start'));
    }, Math.max(0, ctx.startedAt + ctx.config.startupGraceMs + ctx.config.heartbeatMs * 2 - Date.now()));
    t.unref();
    timers.push(t);
  }

  ctx.onClose(async () => {
    for (const t of timers) clearTimeout(t);
    await engine.close();
  });
}
