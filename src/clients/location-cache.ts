// The cluster client's block locations: each block's live replicas as the name server last
// told them, at most `size` blocks (the least recently used goes first: with sealed
// locations kept for an hour, eviction is what drops most of them). The replica a read
// tries first is chosen by a hashring keyed by fid, so each replica's page cache holds a
// distinct share of the files.
//
// How long a location is trusted depends on the block. A sealed block takes no more writes,
// and its replicas change only when the name server moves or repairs it; each such change
// bumps the block's `version`, which clients learn from the delete feed's `moves` (moved())
// or from an answer. So a sealed block's location is kept for `sealedTtlMs` (an hour by
// default) and name-server lookups grow with new blocks, not with reads. Any other block
// (writable, read-only, being copied) is trusted for `ttlMs` (10 s). A sealed location is
// also no longer trusted once a read from one of its replicas fails (replicaFailed(): the
// block is not there, the server is down), or the feed has a gap (sealedUnknown()): a reader
// not following the feed still finds a moved copy this way, as the next replica serves
// meanwhile.
//
// While no name server answers (no answer, a timeout, no quorum, a shutdown), a read may go
// on with a sealed block's cached location however old or distrusted: a replica that moved
// away answers "block not found", which the reader takes to the next one. A writable block's
// location is never served stale.
import { createRequire } from 'node:module';
import { UgcfsError, isUgcfsError } from '../base/errors.ts';
import type { BlockLocation, DsRef } from '../wire/protocol.ts';
import type { NameserverClient } from './nameserver-client.ts';
import { isNoAnswer } from './nameserver-group.ts';

/** How long a location is trusted (`ttlMs`), and a sealed block's (`sealedTtlMs`), by default, ms. */
export const LOCATION_TTL_MS = 10_000;
export const SEALED_LOCATION_TTL_MS = 3_600_000;
/** Moves remembered for blocks being looked up, so an answer older than a move is not trusted (see moved()). */
const RECENT_MOVES = 4096;

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
  /** trusted until then (ms since the epoch); 0: distrusted, kept only for reads while no name server answers */
  until: number;
  ring: HashRingLike | undefined;
}

export interface LocationCacheOptions {
  /** how long a location is trusted, ms */
  ttlMs: number;
  /** how long a sealed (not writable) block's location is trusted, ms (default: SEALED_LOCATION_TTL_MS) */
  sealedTtlMs?: number;
  /** blocks whose locations are kept */
  size: number;
}

/** What the cache has done: `lookups` asked a name server, `hits` were answered from the cache. */
export interface LocationCacheStats {
  lookups: number;
  hits: number;
  /** locations distrusted by a move, a replica without the block or a feed gap */
  dropped: number;
  cached: number;
}

/** A sealed block: its replicas change only by a move or repair, which bumps its version. */
const isSealed = (loc: BlockLocation) => loc.state === 'sealed' && !loc.writable;

export class LocationCache {
  private readonly locations = new Map<number, CachedLocation>();
  private readonly rings = new Map<string, HashRingLike>();
  /** One name-server lookup per block at a time: concurrent reads of a new block share it. */
  private readonly inflight = new Map<number, Promise<BlockLocation>>();
  /** block -> the newest version the feed named, for the few blocks moved lately (oldest first). */
  private readonly recentMoves = new Map<number, number>();
  /** Until then, stale sealed locations are served without asking: the name servers just failed to answer. */
  private nsDownUntil = 0;
  private readonly sealedTtlMs: number;
  private lookups = 0;
  private hits = 0;
  private dropped = 0;

  constructor(
    private readonly ns: Pick<NameserverClient, 'locate'>,
    private readonly o: LocationCacheOptions,
  ) {
    this.sealedTtlMs = o.sealedTtlMs ?? SEALED_LOCATION_TTL_MS;
  }

  /**
   * The block's live replicas, from cache unless stale or `refresh`. `staleSealed` (reads):
   * when no name server answers, a sealed block's cached location is served however old.
   */
  async locate(block: number, refresh = false, staleSealed = false): Promise<BlockLocation> {
    const hit = this.locations.get(block);
    if (hit && !refresh && Date.now() < hit.until) {
      this.hits++;
      // Most recently used goes last (Map order), so eviction takes the least used first.
      this.locations.delete(block);
      this.locations.set(block, hit);
      return hit.loc;
    }
    const stale = staleSealed && hit?.loc.state === 'sealed' ? hit : undefined;
    // A hung name server costs a whole timeout: one read waits it, the next ones for a while do not.
    if (stale && Date.now() < this.nsDownUntil) return stale.loc;
    try {
      return await this.lookup(block, refresh);
    } catch (err) {
      if (noNameserver(err)) this.nsDownUntil = Date.now() + Math.min(this.o.ttlMs, NS_DOWN_RETRY_MS);
      if (stale && this.locations.get(block) === stale && noNameserver(err)) return stale.loc;
      // A block the name server never allocated holds no files: to a reader that is "no such file".
      if (isUgcfsError(err, 'UGCFS_ERR_BLOCK_NOT_FOUND')) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      throw err;
    }
  }

  /** Asks the name server; a plain lookup joins one already on the way, a `fresh` one (after a stale answer) does not. */
  private lookup(block: number, fresh: boolean): Promise<BlockLocation> {
    const joined = fresh ? undefined : this.inflight.get(block);
    if (joined) return joined;
    this.lookups++;
    const p = this.ns.locate(block).then((loc) => {
      this.nsDownUntil = 0;
      this.remember(loc);
      return loc;
    });
    this.inflight.set(block, p);
    const done = () => {
      if (this.inflight.get(block) === p) this.inflight.delete(block);
    };
    p.then(done, done);
    return p;
  }

  remember(loc: BlockLocation): void {
    this.locations.delete(loc.block);
    if (this.locations.size >= this.o.size) {
      const oldest = this.locations.keys().next().value;
      if (oldest !== undefined) this.locations.delete(oldest);
    }
    // An answer sent before a move the feed already told us of is used once, not kept (an
    // answer without a version, from an older name server, cannot be compared).
    const movedTo = this.recentMoves.get(loc.block);
    const outdated = movedTo !== undefined && loc.version !== undefined && loc.version < movedTo;
    const until = outdated ? 0 : Date.now() + (isSealed(loc) ? this.sealedTtlMs : this.o.ttlMs);
    this.locations.set(loc.block, { loc, until, ring: undefined });
  }

  /**
   * The block's replica set changed (the delete feed's `moves`): a cached location older than
   * `version` (or from a name server that sends none) is no longer trusted.
   */
  moved(block: number, version: number): void {
    this.recentMoves.delete(block);
    this.recentMoves.set(block, version);
    if (this.recentMoves.size > RECENT_MOVES) this.recentMoves.delete(this.recentMoves.keys().next().value!);
    const c = this.locations.get(block);
    if (c && (c.loc.version ?? 0) < version) this.distrust(c);
  }

  /**
   * A replica of the block did not serve a read: it does not hold the block (moved away, its
   * copy being pulled again), is down or hung. The location is asked for again next time, so
   * a long-kept one does not send reads to a gone replica first for long.
   */
  replicaFailed(block: number): void {
    const c = this.locations.get(block);
    if (c) this.distrust(c);
  }

  /** The delete feed had a gap (trimmed past our cursor, or reset): moves may have been missed. */
  sealedUnknown(): void {
    for (const c of this.locations.values()) if (isSealed(c.loc)) this.distrust(c);
  }

  forget(block: number): void {
    this.locations.delete(block);
  }

  clear(): void {
    this.locations.clear();
    this.recentMoves.clear();
  }

  stats(): LocationCacheStats {
    return { lookups: this.lookups, hits: this.hits, dropped: this.dropped, cached: this.locations.size };
  }

  /** Kept, for reads while no name server answers (locate's `staleSealed`), but asked again next time. */
  private distrust(c: CachedLocation): void {
    if (c.until === 0) return;
    c.until = 0;
    this.dropped++;
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
