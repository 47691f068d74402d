// Runs cluster operations on the name server: one record per operation (ops-history.ts),
// progress counted as work units finish, work units run a few at a time and, for copies,
// under a byte-rate limit. Operations run detached from the request that started them, so
// the CLI may go away; they stop between units when cancelled or when the name server
// shuts down (and then read 'interrupted').
import { UgcfsError } from '../src/base/errors.ts';
import type { Operation, OperationKind } from '../src/wire/protocol.ts';
import type { NameserverContext } from './context.ts';
import { BlockClaims } from './ops-claims.ts';
import type { OpsSettings } from './ops-config.ts';
import { OperationHistory, isFinished } from './ops-history.ts';
import type { MoveEnv } from './ops-block-move.ts';

/** What a running operation's body gets. */
export interface OpRun {
  op: Operation;
  env: MoveEnv;
  settings: OpsSettings;
  /** true once cancelled or the name server is stopping: finish the current unit, start no more */
  readonly stopped: boolean;
  setTotal(total: number): void;
  /** `units` of work finished (default one), `bytes` copied or reclaimed */
  step(bytes?: number, units?: number): Promise<void>;
  detail(key: string, value: unknown): void;
  /** waits as long as the byte-rate limit asks before copying `bytes` more */
  throttle(bytes: number): Promise<void>;
}

export type OpBody = (run: OpRun) => Promise<string>;

/** Operations that move copies exclude each other: two planners would fight over the same bytes. */
const EXCLUSIVE: Record<OperationKind, readonly OperationKind[]> = {
  rebalance: ['rebalance', 'drain'],
  drain: ['rebalance', 'drain'],
  verify: ['verify'],
  compact: ['compact'],
  repair: ['repair'],
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` over items with at most `limit` at once; stops taking items once `stop()` says so. */
export async function pool<T>(items: readonly T[], limit: number, stop: () => boolean, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (!stop() && next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

export class OpsEngine {
  readonly claims: BlockClaims;
  readonly env: MoveEnv;
  private readonly cancelled = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  private closing = false;

  constructor(
    readonly ctx: NameserverContext,
    readonly history: OperationHistory,
    readonly settings: OpsSettings,
  ) {
    this.claims = new BlockClaims(ctx.blocks);
    this.env = { ctx, claims: this.claims };
  }

  /** Starts an operation in the background; 409 when one it excludes is running. */
  async start(kind: OperationKind, details: Record<string, unknown>, body: OpBody): Promise<Operation> {
    if (this.closing) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'the name server is shutting down');
    const clash = this.history.running(EXCLUSIVE[kind])[0];
    if (clash) throw new UgcfsError('UGCFS_ERR_CONFLICT', `${clash.kind} ${clash.id} is running; wait for it or cancel it first`);
    const op = await this.history.create(kind, details);
    this.ctx.log.info({ op: op.id, kind, details }, 'operation started');
    const p = this.execute(op, body).finally(() => this.running.delete(op.id));
    this.running.set(op.id, p);
    return op;
  }

  cancel(id: string): Operation {
    const op = this.history.require(id);
    if (!isFinished(op)) this.cancelled.add(id);
    return op;
  }

  private async execute(op: Operation, body: OpBody): Promise<void> {
    const started = Date.now();
    let bytesAllowed = 0;
    const rate = (op.details?.bytesPerSec as number | undefined) ?? this.settings.moveBytesPerSec;
    const engine = this;
    const run: OpRun = {
      op,
      env: this.env,
      settings: this.settings,
      get stopped() {
        return engine.closing || engine.cancelled.has(op.id);
      },
      setTotal: (total) => {
        op.total = total;
      },
      step: async (bytes = 0, units = 1) => {
        op.done += units;
        op.bytesDone += bytes;
        await this.history.save(op).catch(() => undefined);
      },
      detail: (key, value) => {
        op.details = { ...(op.details ?? {}), [key]: value };
      },
      throttle: async (bytes) => {
        if (!(rate > 0)) return;
        bytesAllowed += bytes;
        const due = started + (bytesAllowed / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      },
    };
    try {
      const summary = await body(run);
      const state = this.closing ? 'interrupted' : this.cancelled.has(op.id) ? 'interrupted' : 'done';
      const why = this.closing ? 'interrupted: the name server is stopping' : this.cancelled.has(op.id) ? 'cancelled' : '';
      await this.history.finish(op, state, why ? `${summary} (${why})` : summary);
    } catch (err) {
      this.ctx.log.error({ op: op.id, err }, 'operation failed');
      await this.history.finish(op, 'failed', (err as Error).message ?? String(err)).catch(() => undefined);
    } finally {
      this.cancelled.delete(op.id);
    }
    this.ctx.metrics.operations.inc({ kind: op.kind, state: op.state });
    this.ctx.log.info({ op: op.id, kind: op.kind, state: op.state, done: op.done, total: op.total, bytes: op.bytesDone, message: op.message }, 'operation finished');
  }

  /** Stops starting work; running operations end as 'interrupted' after their current units. */
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    const all = Promise.allSettled([...this.running.values()]);
    await Promise.race([all, sleep(timeoutMs)]);
    for (const op of this.history.running()) {
      await this.history.finish(op, 'interrupted', 'interrupted: the name server stopped; run it again to finish').catch(() => undefined);
    }
  }
}
