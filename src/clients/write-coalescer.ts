// Client-side write coalescing: writes to the same block (so the same primary and peers) that
// are issued in the same turn of the event loop go to the primary as one needle batch
// request instead of one PUT each. Fids come from the name server in batches of one block,
// so concurrent writers of one client naturally share a block. A profile of replicated
// 20 KB writes put the per-request HTTP work (parse, headers, undici dispatch, response) at
// most of a data server's JavaScript time per write, paid once per copy; a batch pays it
// once per request. A write alone in its turn still goes as a plain PUT: no added latency,
// and the batch path is only taken when there is something to share.
import type { DataserverClient } from './dataserver-client.ts';
import { isUgcfsError } from '../base/errors.ts';
import { MAX_BATCH_RECORDS, batchItemError, encodeNeedleBatch, type BatchRecord } from '../wire/needle-batch.ts';
import { isMetaText, type WriteResult } from '../wire/protocol.ts';

export interface CoalescerOptions {
  /** at most this many records per batch request; 1 turns coalescing off */
  maxRecords: number;
  /** a batch is sent once its data reaches this many bytes */
  maxBytes: number;
  /** requests (batches or PUTs) out at once per block; writes beyond wait and join the next batch */
  maxInFlight: number;
  /** sends the batches (its secret, its batch timeout) */
  dataservers: DataserverClient;
}

/** One write, as the client would PUT it alone. */
export interface CoalescedWrite {
  primary: string;
  /** peer base URLs the primary forwards to */
  peers: string[];
  block: number;
  record: BatchRecord;
  /** sends this write alone (the PUT), when nothing shares its turn */
  alone: () => Promise<WriteResult>;
}

interface Waiting {
  w: CoalescedWrite;
  resolve(r: WriteResult): void;
  reject(err: unknown): void;
}

/** The writes to one block (one primary, one set of peers) not yet sent, and the requests out. */
interface Lane {
  queue: Waiting[];
  inFlight: number;
  scheduled: boolean;
}

export class WriteCoalescer {
  private readonly lanes = new Map<string, Lane>();

  constructor(private readonly opts: CoalescerOptions) {}

  write(w: CoalescedWrite): Promise<WriteResult> {
    // A record the frame cannot carry goes alone: the primary answers it as it answers any PUT.
    if (this.opts.maxRecords <= 1 || !frameable(w.record)) return w.alone();
    return new Promise<WriteResult>((resolve, reject) => {
      const key = `${w.primary} ${w.block} ${w.peers.join(',')}`;
      let lane = this.lanes.get(key);
      if (!lane) this.lanes.set(key, (lane = { queue: [], inFlight: 0, scheduled: false }));
      lane.queue.push({ w, resolve, reject });
      this.schedule(key, lane);
    });
  }

  /** Every write issued in this turn (and in the I/O callbacks of this loop iteration) joins. */
  private schedule(key: string, lane: Lane): void {
    if (lane.scheduled) return;
    lane.scheduled = true;
    setImmediate(() => {
      lane.scheduled = false;
      this.pump(key, lane);
    });
  }

  /**
   * Sends what is queued over the lane's free request slots, split evenly: with one batch out
   * at a time, a client's writers would all wait for it while the data servers' other hops
   * idle; a few in flight keep every hop busy while each still carries several writes.
   */
  private pump(key: string, lane: Lane): void {
    while (lane.queue.length > 0 && lane.inFlight < this.opts.maxInFlight) {
      const share = Math.ceil(lane.queue.length / (this.opts.maxInFlight - lane.inFlight));
      const limit = Math.min(share, this.opts.maxRecords, MAX_BATCH_RECORDS);
      let n = 0;
      let bytes = 0;
      while (n < lane.queue.length && n < limit && (n === 0 || bytes < this.opts.maxBytes)) bytes += lane.queue[n++]!.w.record.data.length;
      const batch = lane.queue.splice(0, n);
      lane.inFlight++;
      this.send(batch, (failure) => {
        lane.inFlight--;
        // The request itself failed (primary down, timeout): what waits for this lane would go
        // to the same place, so it fails now too and the client retries it on another block.
        if (failure !== undefined) for (const x of lane.queue.splice(0)) x.reject(failure);
        if (lane.queue.length > 0) this.schedule(key, lane);
        else this.forgetIfIdle(key, lane);
      });
    }
    this.forgetIfIdle(key, lane);
  }

  private forgetIfIdle(key: string, lane: Lane): void {
    if (lane.queue.length === 0 && lane.inFlight === 0 && !lane.scheduled && this.lanes.get(key) === lane) this.lanes.delete(key);
  }

  /** `done` hears the error when the request as a whole failed (a per-record error is not one). */
  private send(waiting: Waiting[], done: (failure?: unknown) => void): void {
    if (waiting.length === 1) {
      const only = waiting[0]!;
      only.w.alone().then(
        (r) => {
          done();
          only.resolve(r);
        },
        (err: unknown) => {
          // A PUT's error may be the record's own (a refusal) or the primary's: only the
          // latter says anything about the writes queued behind it.
          done(isRequestFailure(err) ? err : undefined);
          only.reject(err);
        },
      );
      return;
    }
    const first = waiting[0]!.w;
    const frame = Buffer.concat(encodeNeedleBatch(waiting.map((x) => x.w.record)));
    this.opts.dataservers.putNeedleBatch(first.primary, first.block, frame, waiting.length, { replicas: first.peers, who: 'the primary' }).then(
      (results) => {
        done();
        waiting.forEach((x, i) => {
          const r = results[i]!;
          if ('error' in r) x.reject(batchItemError(r));
          else x.resolve(r);
        });
      },
      (err: unknown) => {
        // The request failed as a whole (a refusal of the frame, or the primary or the way
        // to it): only the latter says anything about the writes queued behind it.
        done(isRequestFailure(err) ? err : undefined);
        for (const x of waiting) x.reject(err);
      },
    );
  }
}

/** Errors that say the primary, the way to it or the block failed, not the write itself. */
const REQUEST_FAILURES = new Set(['UGCFS_ERR_UPSTREAM', 'UGCFS_ERR_TIMEOUT', 'UGCFS_ERR_UNAVAILABLE', 'UGCFS_ERR_INTERNAL', 'UGCFS_ERR_BLOCK_READONLY', 'UGCFS_ERR_BLOCK_NOT_FOUND', 'UGCFS_ERR_NO_SPACE']);

/**
 * Whether the batch frame carries the record as given: its text fields are latin1 with 8-
 * and 16-bit lengths, so anything but short printable ASCII (which a PUT's headers would
 * refuse anyway) could arrive changed. (A fid is 21 characters; the bound only keeps the
 * encoder from throwing inside a timer.)
 */
function frameable(r: BatchRecord): boolean {
  return isMetaText(r.mime) && isMetaText(r.owner) && isMetaText(r.fid);
}

function isRequestFailure(err: unknown): boolean {
  return !isUgcfsError(err) || REQUEST_FAILURES.has(err.code);
}
