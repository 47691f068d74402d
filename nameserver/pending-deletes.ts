// Deletes a replica missed because it was down. The client reports them; they are kept in
// LevelDB and replayed by the name server when that data server is back. Until its replay
// is done, the server is left out of the block's read locations, so a returning stale copy
// never serves a file that was deleted while it was away.
import type { Logger } from '../src/base/log.ts';
import { dataserverClient } from './dataservers.ts';
import type { DataserverEntry, Registry } from './registry.ts';
import type { Namespace } from './metadata-store/index.ts';

interface PendingDelete {
  block: number;
  at: number;
}

const SEP = '!';
const RETRY_MS = 1000;

export class PendingDeletes {
  /** ds id -> fid -> block */
  private readonly byDs = new Map<string, Map<string, number>>();
  private replaying = false;
  private readonly retryAt = new Map<string, number>();

  constructor(
    private readonly store: Namespace<PendingDelete>,
    private readonly registry: Registry,
    private readonly secret: string,
    private readonly log: Logger,
  ) {}

  async load(): Promise<void> {
    for await (const [k, v] of this.store.iterator()) {
      const i = k.indexOf(SEP);
      this.remember(k.slice(0, i), k.slice(i + 1), v.block);
    }
  }

  /** A standby follows the leader's change (state-follow.ts). */
  apply(key: string, value: unknown): void {
    const i = key.indexOf(SEP);
    if (i < 0) return;
    const dsId = key.slice(0, i);
    const fid = key.slice(i + 1);
    if (value !== undefined) this.remember(dsId, fid, (value as PendingDelete).block);
    else this.forget(dsId, fid);
  }

  async add(dsId: string, fid: string, block: number): Promise<void> {
    await this.store.put(dsId + SEP + fid, { block, at: Date.now() });
    this.remember(dsId, fid, block);
  }

  /** True when this server still owes deletes in this block (its copy may serve deleted files). */
  owes(dsId: string, block: number): boolean {
    const m = this.byDs.get(dsId);
    if (!m) return false;
    for (const b of m.values()) if (b === block) return true;
    return false;
  }

  count(dsId?: string): number {
    if (dsId !== undefined) return this.byDs.get(dsId)?.size ?? 0;
    let n = 0;
    for (const m of this.byDs.values()) n += m.size;
    return n;
  }

  /** Drops everything owed in a block by a server that no longer keeps that block. */
  async forgetBlock(dsId: string, block: number): Promise<void> {
    const m = this.byDs.get(dsId);
    if (!m) return;
    for (const [fid, b] of [...m]) if (b === block) await this.done(dsId, fid);
  }

  /** Sends owed deletes to every live server owing some; a few at a time. */
  async replay(now = Date.now()): Promise<void> {
    if (this.replaying) return;
    this.replaying = true;
    try {
      for (const [dsId, m] of [...this.byDs]) {
        const ds = this.registry.get(dsId);
        if (!ds || !this.registry.isAlive(ds, now) || m.size === 0) continue;
        if ((this.retryAt.get(dsId) ?? 0) > now) continue;
        const work = [...m.keys()];
        for (let i = 0; i < work.length; i += 8) {
          const ok = await Promise.all(work.slice(i, i + 8).map((fid) => this.replayOne(ds, fid)));
          if (ok.includes(false)) {
            // Back off from a server that fails, rather than retrying it every loop.
            this.retryAt.set(dsId, Date.now() + RETRY_MS);
            break;
          }
        }
      }
    } finally {
      this.replaying = false;
    }
  }

  private async replayOne(ds: DataserverEntry, fid: string): Promise<boolean> {
    try {
      // 'missing' (file or block gone) means the delete is already in effect there.
      await dataserverClient(this.registry, this.secret).deleteNeedle(ds, fid, { kind: 'deleteReplay' });
      await this.done(ds.id, fid);
      this.log.info({ ds: ds.id, fid }, 'replayed a missed delete');
      return true;
    } catch (err) {
      this.log.warn({ ds: ds.id, fid, err: (err as Error).message }, 'replaying a missed delete failed; will retry');
    }
    return false;
  }

  private async done(dsId: string, fid: string): Promise<void> {
    // Unsynced: a delete lost in a power cut is only replayed again (deletes are idempotent).
    await this.store.del(dsId + SEP + fid, { sync: false });
    this.forget(dsId, fid);
  }

  private forget(dsId: string, fid: string): void {
    const m = this.byDs.get(dsId);
    m?.delete(fid);
    if (m && m.size === 0) this.byDs.delete(dsId);
  }

  private remember(dsId: string, fid: string, block: number): void {
    let m = this.byDs.get(dsId);
    if (!m) this.byDs.set(dsId, (m = new Map()));
    m.set(fid, block);
  }
}
