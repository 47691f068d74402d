// Automatic re-replication. A block is repaired once each missing copy is either on a
// server dead for --repair-delay-ms (so a reboot causes no copy storm) or known lost (its
// server is alive but no longer reports it). Blocks with the fewest live copies go first;
// only --repair-concurrency run at once. A block being repaired takes no writes, and ends
// sealed: its survivors plus the new copy become its replica set, so a copy on a server
// that returns later is extra and gets removed. The copy itself is block-copy.ts's, as for
// moves: watched for either end dying, checked by digest, counted once reported.
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { BlockMap, BlockRecord } from './block-map.ts';
import { copyBlock, stopWrites, type BlockCopyEnv } from './block-copy.ts';
import { dataserverClient } from './dataservers.ts';
import type { PendingDeletes } from './pending-deletes.ts';
import { chooseCopyTarget } from './placement.ts';
import type { DataserverEntry, Registry } from './registry.ts';

export interface RepairDeps {
  blocks: BlockMap;
  registry: Registry;
  pending: PendingDeletes;
  log: Logger;
  metrics: Metrics;
  secret: string;
  repairDelayMs: number;
  concurrency: number;
  /** true while repair is held off (after a start or an election, until the block reports are in) */
  heldOff: (now: number) => boolean;
  /** time one block copy may take */
  copyTimeoutMs?: number;
  /** the data servers' heartbeat interval, ms (how long a new copy may take to be reported; default 1000) */
  heartbeatMs?: number;
  /** whether a server's full block report has been taken in since this name server started or was elected (default: yes) */
  reportedWhole?: (dsId: string) => boolean;
}

/** Time one repair copy may take unless configured. */
const REPAIR_COPY_TIMEOUT_MS = 300_000;
/**
 * Under-replicated blocks looked at per tick. The set can hold every block (after a restart
 * until both holders have reported, or when many servers die at once); a whole walk per tick
 * was most of a saturated name server's time at 8M blocks. A cursor goes round it instead.
 */
export const REPAIR_SCAN_SLICE = 5000;
/** ...and for no longer than this per tick, so a scan after a server's death does not hold up assigns. */
export const REPAIR_SCAN_MS = 4;

export interface RepairCandidate {
  rec: BlockRecord;
  holders: DataserverEntry[];
}

/** Fewest live copies first, then by id. */
const sortByDanger = (c: RepairCandidate[]): RepairCandidate[] => c.sort((a, b) => a.holders.length - b.holders.length || a.rec.id - b.rec.id);

export class Repairer {
  private readonly running = new Set<number>();
  /** blocks that found no target; logged once until that changes */
  private readonly stuck = new Set<number>();
  private readonly retryAt = new Map<number, { at: number; failures: number }>();
  /** where the last tick's look at the under-replicated set stopped (a Set's iterator sees later additions) */
  private cursor: Iterator<number> | undefined;
  private closed = false;
  private readonly copyEnv: BlockCopyEnv;

  constructor(private readonly d: RepairDeps) {
    this.copyEnv = { registry: d.registry, blocks: d.blocks, pending: d.pending, dataservers: dataserverClient(d.registry, d.secret), heartbeatMs: d.heartbeatMs ?? 1000, log: d.log };
  }

  get active(): number {
    return this.running.size;
  }

  /**
   * Blocks due for repair now, most endangered first, among the next `slice` blocks of the
   * under-replicated set (block-map.ts keeps it by events); the next call goes on from there.
   */
  due(now = Date.now(), limit = Infinity, slice = REPAIR_SCAN_SLICE): RepairCandidate[] {
    if (this.d.heldOff(now)) {
      // Everything looks under-replicated while the reports come in: none of it is news later.
      this.d.blocks.forgetNews();
      return [];
    }
    if (limit <= 0) return [];
    this.d.blocks.tick(now);
    const out: RepairCandidate[] = [];
    let lastCopies = 0;
    let looked = 0;
    const until = performance.now() + REPAIR_SCAN_MS;
    const late = () => (looked & 63) === 0 && performance.now() > until;
    const consider = (id: number): boolean => {
      const c = this.candidate(id, now);
      if (!c) return false;
      out.push(c);
      // One live copy is as endangered as it gets: enough of those ends the search.
      return c.holders.length === 1 && ++lastCopies >= limit;
    };
    // Blocks that just became under-replicated first (a server that died), then the cursor.
    for (let id = this.d.blocks.newlyUnderReplicated(); id !== undefined; id = this.d.blocks.newlyUnderReplicated()) {
      if (consider(id)) return sortByDanger(out);
      if (++looked >= slice || late()) return sortByDanger(out);
    }
    const under = this.d.blocks.underReplicatedIds();
    for (let wrapped = false; looked < Math.min(slice, under.size); looked++) {
      let next = (this.cursor ??= under.values()).next();
      if (next.done) {
        if (wrapped) break;
        wrapped = true;
        next = (this.cursor = under.values()).next();
        if (next.done) break;
      }
      if (consider(next.value) || late()) break;
    }
    return sortByDanger(out);
  }

  private candidate(id: number, now: number): RepairCandidate | undefined {
    const rec = this.d.blocks.get(id);
    if (!rec || this.running.has(rec.id) || this.d.blocks.busyReason(rec.id)) return undefined;
    if ((this.retryAt.get(rec.id)?.at ?? 0) > now) return undefined;
    const holders = this.d.blocks.liveHolders(rec, now);
    if (holders.length === 0 || holders.length >= rec.replication) return undefined;
    const ready = this.d.blocks.absentReplicas(rec, now).every((id) => {
      const ds = this.d.registry.get(id);
      // Alive and not reporting it is lost only once the server's full report is in: one
      // waiting its turn to report (after a restart, an election) has told nothing yet.
      if (ds && this.d.registry.isAlive(ds, now)) return this.d.reportedWhole?.(id) ?? true;
      if (!ds) return true;
      return now - this.d.registry.deadSince(ds) >= this.d.repairDelayMs;
    });
    if (!ready && rec.replicas.length >= rec.replication) return undefined;
    return { rec, holders };
  }

  tick(now = Date.now()): void {
    if (this.closed) return;
    for (const c of this.due(now, this.d.concurrency - this.running.size)) {
      if (this.running.size >= this.d.concurrency) break;
      this.running.add(c.rec.id);
      void this.repairOne(c).finally(() => this.running.delete(c.rec.id));
    }
  }

  close(): void {
    this.closed = true;
  }

  private async repairOne({ rec, holders }: RepairCandidate): Promise<void> {
    const { blocks, registry, log } = this.d;
    const size = Math.max(0, ...holders.map((h) => h.reports.get(rec.id)?.size ?? 0));
    // A server with an unexpected (e.g. half-copied) copy of this block is a poor target.
    const candidates = registry.alive().filter((d) => !d.reports.has(rec.id) || rec.replicas.includes(d.id));
    const target = chooseCopyTarget(candidates.length > 0 ? candidates : registry.alive(), holders, { needBytes: size });
    if (!target) {
      if (!this.stuck.has(rec.id)) log.warn({ block: rec.id, holders: holders.map((h) => h.id) }, 'block is under-replicated and no data server can take a copy');
      this.stuck.add(rec.id);
      return;
    }
    this.stuck.delete(rec.id);
    const source = holders.find((h) => !this.d.pending.owes(h.id, rec.id)) ?? holders[0]!;
    const started = Date.now();
    blocks.setBusy(rec.id, 'repairing');
    try {
      // Stop appends on the survivors so the copy converges.
      await stopWrites(this.copyEnv, holders, rec.id);
      const bytes = await copyBlock(this.copyEnv, {
        block: rec.id,
        source,
        target,
        copyTimeoutMs: this.d.copyTimeoutMs ?? REPAIR_COPY_TIMEOUT_MS,
        // The survivors are all there is: a second copy of a damaged one still keeps every
        // good record twice (verify settles the damage).
        damagedSource: 'copy',
        // Sealed first: the moment the new set is persisted the block counts as whole
        // (status shows it healed), so that nothing is left to do but log it.
        admit: async () => {
          if (rec.state === 'writable') await blocks.setState(rec.id, 'sealed');
          await blocks.setReplicas(rec.id, [...holders.map((h) => h.id), target.id]);
          blocks.noteCopied(rec.id, target.id);
        },
      });
      this.retryAt.delete(rec.id);
      this.d.metrics.repairs.inc({ result: 'ok' });
      log.info({ block: rec.id, from: source.id, to: target.id, bytes, ms: Date.now() - started }, 'block re-replicated');
    } catch (err) {
      // Back off (1 s, 2 s, ... 30 s) so a block that keeps failing does not hog a slot.
      const failures = (this.retryAt.get(rec.id)?.failures ?? 0) + 1;
      this.retryAt.set(rec.id, { at: Date.now() + Math.min(30_000, 1000 * 2 ** (failures - 1)), failures });
      this.d.metrics.repairs.inc({ result: 'failed' });
      log.warn({ block: rec.id, from: source.id, to: target.id, err: (err as Error).message }, 'block repair failed; will retry');
    } finally {
      blocks.clearBusy(rec.id);
    }
  }
}
