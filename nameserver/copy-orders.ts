// What the leader tells data servers about their copies, decided when something changes
// (a copy reported or changed, a block record changed) and by the sweep (block-sweep.ts),
// never by walking every copy on every heartbeat. Orders wait in a per-server outbox, one per
// block, and go out on that server's next heartbeat reply:
//   - delete-block: a copy of a block whose creation was abandoned (on a server it was sent
//     to), or an extra copy (its server is not in the replica set, which has its full count
//     live elsewhere); the data server quarantines it, never unlinks it at once;
//   - readonly: a copy that still takes writes of a block that no longer does.
// A copy reported sealed seals its writable block. An order is not decided again for 10 s
// after it went out (the server's next report shows it done); one lost with its reply is
// decided again after that, when the copy's report changes or the sweep comes by.
import type { Logger } from '../src/base/log.ts';
import type { BlockReport, DsCommand } from '../src/wire/protocol.ts';
import type { BlockMap, BlockState } from './block-map.ts';
import type { PendingDeletes } from './pending-deletes.ts';
import type { Registry } from './registry.ts';

export interface CopyOrdersDeps {
  blocks: BlockMap;
  registry: Registry;
  pending: Pick<PendingDeletes, 'forgetBlock'>;
  log: Logger;
  /** only a leader orders anything */
  isLeader: () => boolean;
}

/** An order sent is not decided again this soon: time for the server's next report to show it done. */
const RESEND_AFTER_MS = 10_000;

export class CopyOrders {
  private readonly outbox = new Map<string, Map<number, DsCommand>>();
  /** `${ds}/${block}/${kind}` -> when that order last went out */
  private readonly sentAt = new Map<string, number>();

  constructor(private readonly d: CopyOrdersDeps) {}

  /** Decides for every copy of `block`. */
  async evaluateBlock(block: number, now = Date.now()): Promise<void> {
    if (!this.d.isLeader()) return;
    const { copies, servers } = this.d.registry;
    for (const n of copies.holdersOf(block)) {
      const dsId = servers.idOf(n);
      const rep = copies.get(block, n);
      if (rep && this.mayOrder(rep, dsId)) await this.evaluate(block, dsId, now);
    }
  }

  /**
   * False when no copy of `block` needs an order for sure (mayOrder false for each), read
   * from the columns: the sweep asks this of every block and evaluates only the rest.
   */
  mayOrderBlock(block: number): boolean {
    const state = this.d.blocks.stateOfRecord(block);
    if (state === undefined) return false;
    const { copies, servers } = this.d.registry;
    return copies.someCopy(block, (n, sealed, readonly) => this.mayNeedOrder(block, state, servers.idOf(n), sealed, readonly));
  }

  /**
   * False when `dsId`'s copy reported as `rep` needs no order for sure (a member's copy of a
   * sealed block, reported read-only): decided from the columns, for every block of a full
   * report; true means evaluate() must look.
   */
  mayOrder(rep: BlockReport, dsId: string): boolean {
    const state = this.d.blocks.stateOfRecord(rep.id);
    return state !== undefined && this.mayNeedOrder(rep.id, state, dsId, rep.sealed, rep.readonly);
  }

  /** The rule of both: a copy's flags against its block's state, busy mark and replica set. */
  private mayNeedOrder(block: number, state: BlockState, dsId: string, sealed: boolean, readonly: boolean): boolean {
    if (state !== 'sealed' && state !== 'failed' && state !== 'writable') return true;
    if (this.d.blocks.busyReason(block) || !this.d.blocks.isReplica(block, dsId)) return true;
    if (state === 'writable') return sealed;
    return !readonly && !sealed;
  }

  /** Decides for server `dsId`'s copy of `block`. */
  async evaluate(block: number, dsId: string, now = Date.now()): Promise<void> {
    if (!this.d.isLeader()) return;
    const { blocks } = this.d;
    const rec = blocks.get(block);
    const ds = this.d.registry.get(dsId);
    const rep = ds?.reports.get(block);
    if (!rec || !ds || !rep) return;
    if (rec.state === 'abandoned') {
      if (rec.replicas.includes(dsId)) this.order(dsId, { kind: 'delete-block', block, reason: 'block creation was abandoned' }, now);
      return;
    }
    if (rec.state === 'creating' || blocks.busyReason(block)) return;
    if (!rec.replicas.includes(dsId)) {
      if (blocks.liveHolders(rec, now).length >= rec.replication && this.order(dsId, { kind: 'delete-block', block, reason: 'extra copy: the block has its full replica count elsewhere' }, now)) {
        await this.d.pending.forgetBlock(dsId, block);
        this.d.log.info({ ds: dsId, block }, 'removing an extra copy');
      }
      return;
    }
    if (rep.sealed && rec.state === 'writable') {
      await blocks.setState(block, 'sealed');
      return; // the change re-evaluates every copy
    }
    if (rec.state !== 'writable' && !rep.readonly && !rep.sealed) this.order(dsId, { kind: 'readonly', block, readonly: true }, now);
  }

  /**
   * The orders waiting for `dsId`, taken (they go out on its heartbeat reply). One whose copy
   * the report just applied shows gone or done is dropped.
   */
  take(dsId: string, now = Date.now()): DsCommand[] {
    const box = this.outbox.get(dsId);
    if (!box) return [];
    this.outbox.delete(dsId);
    const reports = this.d.registry.get(dsId)?.reports;
    const out: DsCommand[] = [];
    for (const cmd of box.values()) {
      const rep = reports?.get(cmd.block);
      if (!rep || (cmd.kind === 'readonly' && rep.readonly)) continue;
      this.sentAt.set(`${dsId}/${cmd.block}/${cmd.kind}`, now);
      out.push(cmd);
    }
    if (this.sentAt.size > 10_000) for (const [k, at] of this.sentAt) if (now - at > RESEND_AFTER_MS) this.sentAt.delete(k);
    return out;
  }

  /** Drops every waiting order (this name server stopped leading). */
  clear(): void {
    this.outbox.clear();
  }

  /** Queues an order; false when it is queued already or went out a moment ago. */
  private order(dsId: string, cmd: DsCommand, now: number): boolean {
    let box = this.outbox.get(dsId);
    if (box?.get(cmd.block)?.kind === cmd.kind) return false;
    if (now - (this.sentAt.get(`${dsId}/${cmd.block}/${cmd.kind}`) ?? -Infinity) < RESEND_AFTER_MS) return false;
    if (!box) this.outbox.set(dsId, (box = new Map()));
    box.set(cmd.block, cmd);
    return true;
  }
}
