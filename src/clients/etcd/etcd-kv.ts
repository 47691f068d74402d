// The KV half of the etcd client: range, txn (put and delete are one-op txns) and compaction.
// Reads and read-only txns are idempotent (retried anywhere); a txn that writes is not.
import type { EtcdTransport } from './etcd-transport.ts';
import type { DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse } from './etcd-types.ts';
import { compareToWire, headerRevision, opToWire, rangeFromWire, rangeToWire, responseOpFromWire } from './etcd-wire.ts';

export class EtcdKv {
  constructor(private readonly t: EtcdTransport) {}

  async range(r: RangeRequest): Promise<RangeResponse> {
    const w = await this.t.call('/v3/kv/range', rangeToWire(r), { idempotent: true });
    return rangeFromWire(w, headerRevision(w));
  }

  async txn(t: TxnRequest): Promise<TxnResponse> {
    const body: Record<string, unknown> = {};
    if (t.compare?.length) body.compare = t.compare.map(compareToWire);
    if (t.success?.length) body.success = t.success.map(opToWire);
    if (t.failure?.length) body.failure = t.failure.map(opToWire);
    // A txn made only of reads changes nothing and may be retried.
    const readOnly = [...(t.success ?? []), ...(t.failure ?? [])].every((op) => 'range' in op);
    const w = await this.t.call('/v3/kv/txn', body, { idempotent: readOnly });
    const rev = headerRevision(w);
    const responses = ((w.responses as Array<Record<string, Record<string, unknown>>> | undefined) ?? []).map((r) => responseOpFromWire(r, rev));
    return { revision: rev, succeeded: w.succeeded === true, responses };
  }

  async put(p: PutRequest): Promise<number> {
    return (await this.txn({ success: [{ put: p }] })).revision;
  }

  async deleteRange(d: DeleteRangeRequest): Promise<{ revision: number; deleted: number }> {
    const r = await this.txn({ success: [{ deleteRange: d }] });
    const op = r.responses[0];
    return { revision: r.revision, deleted: op && 'deleteRange' in op ? op.deleteRange.deleted : 0 };
  }

  /** Drops every revision older than `revision` (physical: wait until it is done on disk). */
  async compact(revision: number, physical = true): Promise<void> {
    await this.t.call('/v3/kv/compaction', { revision: String(revision), physical }, { idempotent: true });
  }
}
