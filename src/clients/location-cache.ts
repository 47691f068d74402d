// The cluster client's block locations: each block's live replicas as the name server last
// told them, trusted for a TTL, at most `size` blocks (the oldest goes first). The replica
// a read tries first is chosen by a hashring keyed by fid, so each replica's page cache
// holds a distinct share of the files.
//
// While no name server answers (no answer, a timeout, no quorum, a shutdown), a read may go
// on with a sealed block's cached location however old: a sealed block takes no more writes,
// so its replicas rarely change, and a replica that moved away answers "block not found",
// which the reader takes to the next one. A writable block's location is never served stale.
import { createRequire } from 'node:module';
import { UgcfsError, isUgcfsError } from '../base/errors.ts';
import type { BlockLocation, DsRef } from '../wire/protocol.ts';
import type { NameserverClient } from './nameserver-client.ts';
import { isNoAnswer } from './nameserver-group.ts';

/** After no name server answered, stale sealed locations are served without asking for this long (at most the TTL), ms. */
const NS_DOWN_RETRY_MS = 2000;

/** Answers that mean "no name server can tell now", as opposed to a real answer such as a 404. */
function noNameserver(err: unknown): boolean {
  return isNoAnswer(err) || isUgcfsError(err, 'UGCFS_ERR_NO_QUORUM') || isUgcfsError(err, 'UGCFS_ERR_UNAVAILABLE') || isUgcfsError(err, 'UGCFS_ERR_NOT_LEADER');
}

interface HashRingLike {
  range(key: string, size?: number, unique?: boolean): string[];
}
// hashring ships no types; this is the one call we make.
const HashRing = createRequire(import.meta.url)('hashring') as new (servers: string[]) => HashRingLike;

interface CachedLocation {
  loc: BlockLocation;
  at: number;
  ring: HashRingLike | undefined;
}

export class LocationCache {
  private readonly locations = new Map<number, CachedLocation>();
  private readonly rings = new Map<string, HashRingLike>();
  /** Until then, stale sealed locations are served without asking: the name servers just failed to answer. */
  private nsDownUntil = 0;

  constructor(
    private readonly ns: NameserverClient,
    private readonly o: { ttlMs: number; size: number },
  ) {}

  /**
   * The block's live replicas, from cache unless stale or `refresh`. `staleSealed` (reads):
   * when no name server answers, a sealed block's cached location is served however old.
   */
  async locate(block: number, refresh = false, staleSealed = false): Promise<BlockLocation> {
    const hit = this.locations.get(block);
    if (hit && !refresh && Date.now() - hit.at < this.o.ttlMs) return hit.loc;
    const stale = staleSealed && hit?.loc.state === 'sealed' ? hit : undefined;
    // A hung name server costs a whole timeout: one read waits it, the next ones for a while do not.
    if (stale && Date.now() < this.nsDownUntil) return stale.loc;
    try {
      const loc = await this.ns.locate(block);
      this.nsDownUntil = 0;
      this.remember(loc);
      return loc;
    } catch (err) {
      if (noNameserver(err)) this.nsDownUntil = Date.now() + Math.min(this.o.ttlMs, NS_DOWN_RETRY_MS);
      if (stale && this.locations.get(block) === stale && noNameserver(err)) return stale.loc;
      // A block the name server never allocated holds no files: to a reader that is "no such file".
      if (isUgcfsError(err, 'UGCFS_ERR_BLOCK_NOT_FOUND')) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      throw err;
    }
  }

  remember(loc: BlockLocation): void {
    this.locations.delete(loc.block);
    if (this.locations.size >= this.o.size) {
      const oldest = this.locations.keys().next().value;
      if (oldest !== undefined) this.locations.delete(oldest);
    }
    this.locations.set(loc.block, { loc, at: Date.now(), ring: undefined });
  }

  forget(block: number): void {
    this.locations.delete(block);
  }

  clear(): void {
    this.locations.clear();
  }

  /** Replicas in the order to try for this fid: its hashring owner first. */
  order(block: number, fid: string): DsRef[] {
    const c = this.locations.get(block);
    if (!c) return [];
    if (c.loc.replicas.length < 2) return [...c.loc.replicas];
    c.ring ??= this.ringFor(c.loc.replicas);
    const ids = c.ring.range(fid, c.loc.replicas.length, true);
    const byId = new Map(c.loc.replicas.map((r) => [r.id, r]));
    const out = ids.map((id) => byId.get(id)).filter((r): r is DsRef => r !== undefined);
    for (const r of c.loc.replicas) if (!out.includes(r)) out.push(r);
    return out;
  }

  /** Rings are costly to build and many blocks share a replica set, so they are shared by set. */
  private ringFor(replicas: DsRef[]): HashRingLike {
    const key = replicas.map((r) => r.id).sort().join(',');
    let ring = this.rings.get(key);
    if (!ring) {
      if (this.rings.size >= 256) this.rings.clear();
      ring = new HashRing(replicas.map((r) => r.id));
      this.rings.set(key, ring);
    }
    return ring;
  }
}
