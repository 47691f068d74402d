// The metadata-store interface: everything the name server persists goes through it, so the
// same code runs on the embedded LevelDB of a single name server (leveldb.ts) and on etcd
// for a high-availability group of name servers (etcd.ts).
//
// It is shaped after today's `Store<V>` (an abstract-level JSON sublevel, state-db.ts), so
// wiring is mechanical: `jsonSublevel<V>(db, name)` becomes `store.namespace<V>(name)`, the
// type `Store<V>` becomes `Namespace<V>`; get/put/del/batch/iterator keep their shapes
// (`for await (const [k, v] of ns.iterator({ lt, reverse, limit }))`, batch ops
// `{ type: 'put' | 'del', key, value }`), and the `SYNC` argument may stay or go: every
// write is durable when its promise resolves unless it says `{ sync: false }`.
//
// Both implementations enforce the same limits (limits.ts): code that passes on LevelDB
// does not start failing when the group moves to etcd.

/** A JSON-serialisable value (stored as its JSON text; read back as JSON.parse of it). */
export type Json = unknown;

export interface WriteOptions {
  /**
   * Default true: the write is on disk (LevelDB: fsync; etcd: committed by a quorum, which
   * always fsyncs) before the promise resolves. `false` is for hot writes whose loss in a
   * power cut is harmless (they are redone or re-derived); LevelDB skips the fsync, etcd
   * ignores it. Cases found: OperationHistory.save's throttled progress updates, and
   * PendingDeletes' delete of an entry its data server has acknowledged (a lost delete
   * only re-sends an idempotent delete).
   */
  sync?: boolean;
}

export interface BatchOptions extends WriteOptions {
  /**
   * Default true: all ops or none. An atomic batch larger than one etcd transaction allows
   * (limits.ts: maxTxnOps ops, MAX_REQUEST_BYTES) is refused whole, on both backends.
   * `false`: the ops may be applied in several transactions (etcd splits the batch at the
   * limits; a failure can leave a prefix applied) — for clean-ups such as trimming the
   * delete feed, where each op stands alone.
   */
  atomic?: boolean;
}

/** What a write returns: etcd's revision after it; 0 on LevelDB (which has no revisions). */
export interface WriteResult {
  revision: number;
}

/** Key range, as in abstract-level: bounds compare keys as UTF-8 bytes. */
export interface RangeOptions {
  gt?: string;
  gte?: string;
  lt?: string;
  lte?: string;
  /** largest key first */
  reverse?: boolean;
  /** at most this many entries (-1 or absent: no limit) */
  limit?: number;
}

/** A value with the revisions etcd keeps for it; on LevelDB both revisions are 0. */
export interface Entry<V> {
  /** undefined when the key does not exist */
  value: V | undefined;
  /** the store's revision the read saw */
  revision: number;
  /** the revision that last wrote this key (0 when it does not exist) */
  modRevision: number;
}

export type NamespaceBatchOp<V> = { type: 'put'; key: string; value: V } | { type: 'del'; key: string };

/** A batch op of MetadataStore.batch: names its namespace (abstract-level's `sublevel` op option). */
export type BatchOp =
  | { type: 'put'; namespace: Namespace<any>; key: string; value: Json }
  | { type: 'del'; namespace: Namespace<any>; key: string };

/**
 * An ordered iteration: `for await (const [key, value] of it)`; breaking out of the loop
 * releases it. Entries come in UTF-8 byte order of their keys (reverse: the opposite).
 */
export interface MetadataIterator<V> extends AsyncIterable<[string, V]> {
  /**
   * etcd: the revision of the snapshot the iteration reads (every page is read at it), known
   * once the first entry (or the end) has been read; a watch from it misses nothing. LevelDB:
   * undefined.
   */
  readonly revision: number | undefined;
  /** Reads every remaining entry. */
  all(): Promise<Array<[string, V]>>;
  /**
   * The remaining entries a page at a time (each a non-empty array, in order): one await per
   * page instead of one per entry, for loading a namespace of millions (the block map at
   * start). Use either this or the entry iteration, not both.
   */
  pages(): AsyncIterable<Array<[string, V]>>;
}

/** One namespace of JSON values (a LevelDB sublevel `!name!key`; etcd keys `<prefix>/<name>/<key>`). */
export interface Namespace<V> {
  readonly name: string;
  get(key: string): Promise<V | undefined>;
  getEntry(key: string): Promise<Entry<V>>;
  put(key: string, value: V, opts?: WriteOptions): Promise<WriteResult>;
  /** Deleting a missing key is not an error. */
  del(key: string, opts?: WriteOptions): Promise<WriteResult>;
  batch(ops: Array<NamespaceBatchOp<V>>, opts?: BatchOptions): Promise<WriteResult>;
  iterator(range?: RangeOptions): MetadataIterator<V>;
}

export interface MetadataStore {
  readonly kind: 'leveldb' | 'etcd';
  /**
   * The namespace `name` (lower-case letters, digits, '.', '_' and '-', starting with a
   * letter or digit). Handles are cheap; the same name gives the same data.
   */
  namespace<V>(name: string): Namespace<V>;
  /** One batch across namespaces (atomic unless `{ atomic: false }`). */
  batch(ops: BatchOp[], opts?: BatchOptions): Promise<WriteResult>;
  close(): Promise<void>;
}
