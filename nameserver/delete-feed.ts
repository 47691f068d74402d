// The delete feed: every delete made through the cluster client is recorded here with a
// sequence number, so origins that cache files can learn of deletes made around them
// (`ugcfs rm`, migration, another origin) by polling `GET /deletes?after=SEQ`. Kept in
// LevelDB so cursors survive a name-server restart; bounded by count and age. Each feed has
// an id made when it is first created: a name server that lost its state starts a new feed
// at sequence 0, and a poller's cursor into the old one means nothing there, however the
// numbers compare — the id tells it so.
//
// Moves share the sequence: every change of a block's replica set (repair, move, drain) is
// recorded with the block's new version, so clients that cache sealed blocks' locations for
// long (src/clients/location-cache.ts) drop a location once it is older than that. One
// sequence means one cursor, one trim and one "gap" for both.
import { randomBytes } from 'node:crypto';
import { decodeFid } from '../src/wire/file-id.ts';
import type { BlockMove, DeleteEvent, DeleteFeedPage } from '../src/wire/protocol.ts';
import type { Namespace } from './metadata-store/index.ts';

interface StoredDelete {
  fid: string;
  at: number;
}

interface StoredMove {
  block: number;
  version: number;
  at: number;
}

/** A stored event: a delete ({fid, at}) or a move ({block, version, at}). */
export type StoredFeedEvent = StoredDelete | StoredMove;

type FeedEvent = DeleteEvent | BlockMove;

const isDelete = (ev: FeedEvent): ev is DeleteEvent => 'fid' in ev;

/** The in-memory event for a stored value; undefined for a value of neither shape. */
function eventOf(seq: number, v: unknown): FeedEvent | undefined {
  const o = v as Partial<StoredDelete & StoredMove> | undefined;
  if (typeof o?.at !== 'number') return undefined;
  if (typeof o.fid === 'string') return { seq, fid: o.fid, at: o.at };
  if (typeof o.block === 'number' && typeof o.version === 'number') return { seq, block: o.block, version: o.version, at: o.at };
  return undefined;
}

const key = (seq: number) => String(seq).padStart(15, '0');
/** Sorts after every sequence key, so iterating `lt` it sees only events. */
const FEED_ID_KEY = '~feed';

export interface DeleteFeedOptions {
  maxEntries?: number;
  maxAgeMs?: number;
  pageSize?: number;
}

export class DeleteFeed {
  private readonly events: FeedEvent[] = [];
  private seq = 0;
  private id = '';
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  private readonly pageSize: number;

  constructor(private readonly store: Namespace<StoredFeedEvent>, o: DeleteFeedOptions = {}) {
    this.maxEntries = o.maxEntries ?? 100_000;
    this.maxAgeMs = o.maxAgeMs ?? 3_600_000;
    this.pageSize = o.pageSize ?? 1000;
  }

  async load(): Promise<void> {
    const newest: FeedEvent[] = [];
    let seq = 0;
    for await (const [k, v] of this.store.iterator({ reverse: true, limit: this.maxEntries, lt: FEED_ID_KEY })) {
      seq = Math.max(seq, Number(k));
      const ev = eventOf(Number(k), v);
      if (ev) newest.push(ev);
    }
    newest.reverse();
    this.events.push(...newest);
    this.seq = seq;
    const stored = (await this.store.get(FEED_ID_KEY)) as unknown as { id?: string } | undefined;
    if (stored?.id) this.id = stored.id;
  }

  /** On becoming leader: a new state gets its feed id. */
  async takeOver(): Promise<void> {
    if (this.id !== '') return;
    const id = randomBytes(8).toString('hex');
    await this.store.put(FEED_ID_KEY, { id } as unknown as StoredFeedEvent);
    this.id = id;
  }

  /** A standby follows the leader's change (state-follow.ts): a new event, a trim, the feed id. */
  apply(k: string, value: unknown): void {
    if (k === FEED_ID_KEY) {
      const id = (value as { id?: unknown } | undefined)?.id;
      if (typeof id === 'string') this.id = id;
      return;
    }
    const seq = Number(k);
    if (value !== undefined) {
      if (seq > this.seq) {
        const ev = eventOf(seq, value);
        if (ev) this.events.push(ev);
        this.seq = seq;
      }
    } else {
      // Trims drop the oldest events; in order, so the head is where they are.
      while (this.events.length > 0 && this.events[0]!.seq <= seq) this.events.shift();
    }
  }

  /** This feed's id (see the header comment). */
  get feedId(): string {
    return this.id;
  }

  async record(fid: string, now = Date.now()): Promise<number> {
    const ev = { seq: ++this.seq, fid, at: now };
    this.events.push(ev);
    // Synced: the delete is acknowledged (and replayed to late copies of adopted blocks) after this.
    await this.store.put(key(ev.seq), { fid, at: now });
    await this.trim(now);
    return ev.seq;
  }

  /**
   * A change of `block`'s replica set, now at `version`. Synced like a delete: a sequence
   * number handed out and then lost in a crash would be handed out again, and a poller that
   * saw the first would skip the second. The caller may drop the promise (the block map's
   * move hook does): the event is in the feed at once, and a failed write is not an
   * unhandled rejection.
   */
  recordMove(block: number, version: number, now = Date.now()): Promise<number> {
    const ev: BlockMove = { seq: ++this.seq, block, version, at: now };
    this.events.push(ev);
    const done = (async () => {
      await this.store.put(key(ev.seq), { block, version, at: now });
      await this.trim(now);
      return ev.seq;
    })();
    done.catch(() => {});
    return done;
  }

  /** The fids of the recorded deletes whose file id names `block`, oldest first. */
  fidsInBlock(block: number): string[] {
    const out: string[] = [];
    for (const ev of this.events) {
      if (!isDelete(ev)) continue;
      try {
        if (decodeFid(ev.fid).block === block) out.push(ev.fid);
      } catch {
        // recorded fids were valid when recorded; nothing else can be in the feed
      }
    }
    return out;
  }

  /**
   * Events after `after` (at most a page of deletes and moves together, in sequence order);
   * without `after`, only the current cursor.
   */
  since(after: number | undefined): DeleteFeedPage {
    if (after === undefined) return { feed: this.id, seq: this.seq, deletes: [], moves: [], complete: true };
    if (after > this.seq) return { feed: this.id, seq: this.seq, deletes: [], moves: [], complete: false };
    const oldest = this.events[0]?.seq ?? this.seq + 1;
    const complete = after >= oldest - 1;
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid]!.seq <= after) lo = mid + 1;
      else hi = mid;
    }
    const page = this.events.slice(lo, lo + this.pageSize);
    const deletes: DeleteEvent[] = [];
    const moves: BlockMove[] = [];
    for (const ev of page) {
      if (isDelete(ev)) deletes.push(ev);
      else moves.push(ev);
    }
    return { feed: this.id, seq: page.at(-1)?.seq ?? this.seq, deletes, moves, complete };
  }

  private async trim(now: number): Promise<void> {
    const drop: string[] = [];
    while (this.events.length > 0 && (this.events.length > this.maxEntries || now - this.events[0]!.at > this.maxAgeMs)) {
      drop.push(key(this.events.shift()!.seq));
    }
    if (drop.length > 0) await this.store.batch(drop.map((k) => ({ type: 'del' as const, key: k })), { sync: false, atomic: false });
  }
}
