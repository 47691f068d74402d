// One namespace of the etcd metadata store (etcd.ts): keys `<prefix>/<namespace>/<key>`,
// JSON values, ordered paged iteration read at one revision.
import { isEtcdDown } from './errors.ts';
import { checkKey, checkOp, checkRange } from './limits.ts';
import type { EtcdMetadataStore } from './etcd.ts';
import type { BatchOptions, Entry, MetadataIterator, Namespace, NamespaceBatchOp, RangeOptions, WriteOptions, WriteResult } from './types.ts';

const ZERO = Buffer.from([0]);

/** The smallest key greater than every key starting with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return ZERO; // every key
}

/**
 * The end of the slice of keys sharing their first `cut` bytes after `baseBytes` (the
 * namespace's prefix) with `from`, no further than `to`.
 */
function sliceEnd(from: Buffer, baseBytes: number, cut: number, to: Buffer): Buffer {
  const want = baseBytes + cut;
  // a `from` shorter than the prefix is padded with zero bytes (its slice begins at it)
  const end = prefixEnd(from.length >= want ? from.subarray(0, want) : Buffer.concat([from, Buffer.alloc(want - from.length)]));
  return end.length > 0 && end[0] !== 0 && Buffer.compare(end, to) < 0 ? end : to;
}

export class EtcdNamespace<V> implements Namespace<V> {
  constructor(
    readonly store: EtcdMetadataStore,
    readonly name: string,
  ) {}

  async get(key: string): Promise<V | undefined> {
    return (await this.getEntry(key)).value;
  }

  /**
   * A linearizable read; when etcd has no quorum (or the members it tries do not answer), the
   * answer of a member that still runs, which may trail the group's latest write: lookups
   * (legacy paths) go on through a quorum loss rather than fail.
   */
  async getEntry(key: string): Promise<Entry<V>> {
    checkKey(key);
    const full = this.store.fullKey(this.name, key);
    const r = await this.store.client.range({ key: full }).catch((err: unknown) => {
      if (!isEtcdDown(err)) throw err;
      return this.store.client.range({ key: full, serializable: true });
    });
    const kv = r.kvs[0];
    return { value: kv ? (JSON.parse(kv.value.toString('utf8')) as V) : undefined, revision: r.revision, modRevision: kv?.modRevision ?? 0 };
  }

  async put(key: string, value: V, opts: WriteOptions = {}): Promise<WriteResult> {
    return this.store.write([checkOp(this.name, 'put', key, value)], opts);
  }

  async del(key: string, opts: WriteOptions = {}): Promise<WriteResult> {
    return this.store.write([checkOp(this.name, 'del', key, undefined)], opts);
  }

  async batch(ops: Array<NamespaceBatchOp<V>>, opts: BatchOptions = {}): Promise<WriteResult> {
    return this.store.write(ops.map((op) => checkOp(this.name, op.type, op.key, op.type === 'put' ? op.value : undefined)), opts);
  }

  iterator(range: RangeOptions = {}): MetadataIterator<V> {
    checkRange(range);
    const store = this.store;
    const base = store.nsPrefix(this.name);
    const start = range.gte !== undefined ? Buffer.concat([base, Buffer.from(range.gte)]) : range.gt !== undefined ? Buffer.concat([base, Buffer.from(range.gt), ZERO]) : base;
    const end = range.lt !== undefined ? Buffer.concat([base, Buffer.from(range.lt)]) : range.lte !== undefined ? Buffer.concat([base, Buffer.from(range.lte), ZERO]) : prefixEnd(base);
    const limit = range.limit === undefined || range.limit < 0 ? Infinity : range.limit;
    const reverse = range.reverse === true;
    const state: { revision: number | undefined } = { revision: undefined };

    async function* pages(): AsyncGenerator<Array<[string, V]>> {
      let from = start;
      let to = end;
      let left = limit;
      if (left === 0 || Buffer.compare(from, to) >= 0) {
        state.revision ??= await store.currentRevision();
        return;
      }
      // etcd 3.4 walks every key of [key, range_end) to count it, whatever the limit: pages
      // of one long range cost O(keys left) each, O(n²) in all (8M block records: hours).
      // A forward page reads a slice instead: the keys sharing their first `cut` bytes with
      // `from` (README.md, "Limits", "Paging"), `cut` adapted so that a slice holds a few pages.
      // Never the whole namespace in one request, its first page included: at 8M keys that
      // one count outlasts the client's timeout. Starting on the first byte, empty slices
      // are skipped a byte value at a time.
      let cut = 1;
      for (;;) {
        const slice = reverse ? to : sliceEnd(from, base.length, cut, to);
        const page = await store.client.range({
          key: from,
          rangeEnd: slice,
          // etcd 3.4 ignores the limit of a sorted range until after it has read the whole
          // range (README.md, "Reverse iteration"): reverse pages are larger, to read it fewer times.
          limit: Math.min(reverse ? store.pageSize * 8 : store.pageSize, left),
          ...(state.revision !== undefined ? { revision: state.revision } : {}),
          ...(reverse ? { sortOrder: 'DESCEND' as const, sortTarget: 'KEY' as const } : {}),
        });
        state.revision ??= page.revision;
        if (page.kvs.length > 0) yield page.kvs.map((kv) => [kv.key.subarray(base.length).toString('utf8'), JSON.parse(kv.value.toString('utf8')) as V]);
        left -= page.kvs.length;
        const last = page.kvs[page.kvs.length - 1];
        if (left <= 0) return;
        if (reverse) {
          if (!page.more || !last) return;
          to = last.key;
          continue;
        }
        if (page.more && last) from = Buffer.concat([last.key, ZERO]);
        else if (Buffer.compare(slice, to) >= 0) return;
        else from = slice; // the slice is read whole: on past it
        // A slice of many pages is narrowed, one of a few keys widened (count: its keys from `from` on).
        if (page.count > 4 * store.pageSize) cut++;
        else if (page.count < store.pageSize / 4 && cut > 1) cut--;
      }
    }
    async function* entries(): AsyncGenerator<[string, V]> {
      for await (const page of pages()) yield* page;
    }
    const gen = entries();
    return {
      get revision() {
        return state.revision;
      },
      [Symbol.asyncIterator]: () => gen,
      pages,
      all: async () => {
        const out: Array<[string, V]> = [];
        for await (const e of gen) out.push(e);
        return out;
      },
    };
  }
}
