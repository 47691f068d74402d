// Client-side write coalescing: writes to the same block (so the same primary and peers) that
// are issued in the same turn of the event loop go to the primary as one needle batch
// request instead of one PUT each. Fids come from the name server in batches of one block,
// so concurrent writers of one client naturally share a block. A profile of replicated
// 20 KB writes put the per-request HTTP work (parse, headers, undici dispatch, response) at
// most of a data server's JavaScript time per write, paid once per copy; a batch pays it
// once per request. A write alone in its turn still goes as a plain PUT: no added latency,
// and the batch path is only taken when there is something to share.
import { expectOk, sendBytes } from './http-client.ts';
import { BATCH_CONTENT_TYPE, MAX_BATCH_RECORDS, batchItemError, encodeNeedleBatch, parseBatchResults, type BatchRecord, type BatchWriteResult } from './needle-batch.ts';
import { DS_ROUTES, HEADERS, type WriteResult } from './protocol.ts';
import { SECRET_HEADER } from './secret.ts';

export interface CoalescerOptions {
  /** at most this many records per batch request; 1 turns coalescing off */
  maxRecords: number;
  /** a batch is sent once its data reaches this many bytes */
  maxBytes: number;
  secret: string;
  timeoutMs: number;
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

interface Group {
  waiting: Waiting[];
  bytes: number;
}

export class WriteCoalescer {
  private readonly groups = new Map<string, Group>();

  constructor(private readonly opts: CoalescerOptions) {}

  write(w: CoalescedWrite): Promise<WriteResult> {
    if (this.opts.maxRecords <= 1) return w.alone();
    return new Promise<WriteResult>((resolve, reject) => {
      const key = `${w.primary} ${w.block} ${w.peers.join(',')}`;
      let g = this.groups.get(key);
      if (!g) {
        const fresh: Group = { waiting: [], bytes: 0 };
        g = fresh;
        this.groups.set(key, fresh);
        // Every write issued in this turn (and in the I/O callbacks of this loop iteration) joins.
        setImmediate(() => {
          if (this.groups.get(key) === fresh) this.send(key, fresh);
        });
      }
      g.waiting.push({ w, resolve, reject });
      g.bytes += w.record.data.length;
      if (g.waiting.length >= Math.min(this.opts.maxRecords, MAX_BATCH_RECORDS) || g.bytes >= this.opts.maxBytes) this.send(key, g);
    });
  }

  private send(key: string, g: Group): void {
    this.groups.delete(key);
    if (g.waiting.length === 1) {
      const only = g.waiting[0]!;
      only.w.alone().then(only.resolve, only.reject);
      return;
    }
    const first = g.waiting[0]!.w;
    const headers: Record<string, string> = { 'content-type': BATCH_CONTENT_TYPE };
    if (first.peers.length > 0) headers[HEADERS.replicas] = first.peers.join(',');
    if (this.opts.secret) headers[SECRET_HEADER] = this.opts.secret;
    const body = Buffer.concat(encodeNeedleBatch(g.waiting.map((x) => x.w.record)));
    const url = first.primary + DS_ROUTES.blockNeedles.replace(':id', String(first.block));
    sendBytes('POST', url, body, headers, this.opts.timeoutMs).then(
      (res) => {
        let results: BatchWriteResult['results'];
        try {
          results = parseBatchResults(expectOk(res).body, g.waiting.length, 'the primary');
        } catch (err) {
          for (const x of g.waiting) x.reject(err);
          return;
        }
        g.waiting.forEach((x, i) => {
          const r = results[i]!;
          if ('error' in r) x.reject(batchItemError(r));
          else x.resolve({ fid: r.fid, size: r.size, crc: r.crc, ...(r.existed ? { existed: true } : {}) });
        });
      },
      (err: unknown) => {
        for (const x of g.waiting) x.reject(err);
      },
    );
  }
}
