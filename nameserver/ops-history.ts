// Cluster operations as records in the name server's LevelDB (sublevel 'ops'), so an
// operation outlives the CLI that started it and, across a name-server restart, shows up as
// 'interrupted' (its work is re-planned from the cluster's state when it is run again).
import { randomBytes } from 'node:crypto';
import { UgcfsError } from '../src/base/errors.ts';
import type { Operation, OperationKind } from '../src/wire/protocol.ts';
import type { Namespace } from './metadata-store/index.ts';

/** Finished operations kept; older ones are dropped from the store. */
const KEEP_FINISHED = 200;
/** Progress is written at most this often while an operation runs (and always at its end). */
const SAVE_EVERY_MS = 250;

// Progress and history are redone or re-derived after a crash: their loss costs nothing.
const UNSYNCED = { sync: false } as const;

export const OP_ID = /^op-[0-9a-z]{1,12}-[0-9a-f]{6}$/;

export function isFinished(op: Operation): boolean {
  return op.state === 'done' || op.state === 'failed' || op.state === 'interrupted';
}

export class OperationHistory {
  private readonly ops = new Map<string, Operation>();
  private readonly lastSave = new Map<string, number>();

  constructor(private readonly store: Namespace<Operation>) {}

  /** Loads the records; whatever was running when the name server stopped is now 'interrupted'. */
  async load(now = Date.now()): Promise<Operation[]> {
    const interrupted: Operation[] = [];
    for await (const [, op] of this.store.iterator()) {
      if (!isFinished(op)) {
        op.state = 'interrupted';
        op.finishedAt = now;
        op.message = `${op.message ? op.message + '; ' : ''}interrupted: the name server stopped; run it again to finish`;
        await this.store.put(op.id, op, UNSYNCED);
        interrupted.push(op);
      }
      this.ops.set(op.id, op);
    }
    return interrupted;
  }

  async create(kind: OperationKind, details: Record<string, unknown>, now = Date.now()): Promise<Operation> {
    // Time first, so the store's key order is the start order.
    const id = `op-${now.toString(36)}-${randomBytes(3).toString('hex')}`;
    const op: Operation = { id, kind, state: 'running', startedAt: now, done: 0, total: 0, bytesDone: 0, details };
    this.ops.set(id, op);
    await this.store.put(id, op, UNSYNCED);
    await this.prune();
    return op;
  }

  get(id: string): Operation | undefined {
    return this.ops.get(id);
  }

  require(id: string): Operation {
    const op = OP_ID.test(id) ? this.ops.get(id) : undefined;
    if (!op) throw new UgcfsError('UGCFS_ERR_OPERATION_NOT_FOUND', `no cluster operation with id ${JSON.stringify(id.slice(0, 40))}`);
    return op;
  }

  /** Newest first. */
  list(): Operation[] {
    return [...this.ops.values()].sort((a, b) => b.startedAt - a.startedAt || (a.id < b.id ? 1 : -1));
  }

  running(kinds?: readonly OperationKind[]): Operation[] {
    return this.list().filter((o) => !isFinished(o) && (!kinds || kinds.includes(o.kind)));
  }

  /** Writes progress, throttled unless `force` (state changes always pass `force`). */
  async save(op: Operation, force = false, now = Date.now()): Promise<void> {
    if (!force && now - (this.lastSave.get(op.id) ?? 0) < SAVE_EVERY_MS) return;
    this.lastSave.set(op.id, now);
    await this.store.put(op.id, op, UNSYNCED);
  }

  async finish(op: Operation, state: 'done' | 'failed' | 'interrupted', message: string, now = Date.now()): Promise<void> {
    if (isFinished(op)) return;
    op.state = state;
    op.finishedAt = now;
    op.message = message;
    this.lastSave.delete(op.id);
    await this.store.put(op.id, op, UNSYNCED);
  }

  private async prune(): Promise<void> {
    const finished = this.list().filter(isFinished);
    for (const op of finished.slice(KEEP_FINISHED)) {
      this.ops.delete(op.id);
      await this.store.del(op.id, UNSYNCED);
    }
  }
}
