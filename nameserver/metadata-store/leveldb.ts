// The metadata store on the embedded LevelDB of a single name server: the `level` package as
// nameserver/state-db.ts opens it, one abstract-level sublevel with JSON values per
// namespace, so the on-disk layout is today's (key `!<namespace>!<key>`, value the JSON
// text) and existing state directories open unchanged.
//
// Every write passes `{ sync: true }` to classic-level unless the caller says `{ sync: false }`.
// Revisions do not exist here: writes return revision 0, iterators report none. Limits are
// etcd's (limits.ts), so a batch LevelDB takes etcd takes too.
import { Level } from 'level';
import type { AbstractSublevel } from 'abstract-level';
import { checkAtomicBatch, checkKey, checkNamespaceName, checkOp, checkRange, ETCD_DEFAULT_MAX_TXN_OPS, type CheckedOp } from './limits.ts';
import type { BatchOp, BatchOptions, Entry, MetadataIterator, MetadataStore, Namespace, NamespaceBatchOp, RangeOptions, WriteOptions, WriteResult } from './types.ts';

type RootDb = Level<string, string>;
type Sub = AbstractSublevel<RootDb, string | Buffer | Uint8Array, string, unknown>;

export interface LevelStoreOptions {
  /** ops an atomic batch may hold (etcd's --max-txn-ops of the group this state may move to) */
  maxTxnOps?: number;
}

const NONE: WriteResult = Object.freeze({ revision: 0 });

/** Entries read per page by `pages()`. */
const PAGE_ENTRIES = 1000;

export class LevelMetadataStore implements MetadataStore {
  readonly kind = 'leveldb' as const;
  private readonly subs = new Map<string, Sub>();
  private readonly maxTxnOps: number;

  private constructor(
    readonly db: RootDb,
    private readonly ownsDb: boolean,
    o: LevelStoreOptions,
  ) {
    this.maxTxnOps = o.maxTxnOps ?? ETCD_DEFAULT_MAX_TXN_OPS;
  }

  /** Opens (creating if needed) the LevelDB in `dir`; close() closes it. */
  static async open(dir: string, o: LevelStoreOptions = {}): Promise<LevelMetadataStore> {
    const db = new Level<string, string>(dir);
    await db.open();
    return new LevelMetadataStore(db, true, o);
  }

  /** Uses a database opened elsewhere (state-db.ts openStateDb); close() leaves it open. */
  static wrap(db: RootDb, o: LevelStoreOptions = {}): LevelMetadataStore {
    return new LevelMetadataStore(db, false, o);
  }

  namespace<V>(name: string): Namespace<V> {
    checkNamespaceName(name);
    return new LevelNamespace<V>(this, name);
  }

  /** @internal the sublevel of a namespace, made as state-db.ts jsonSublevel makes it */
  sub(name: string): Sub {
    let s = this.subs.get(name);
    if (!s) {
      s = this.db.sublevel<string, unknown>(name, { valueEncoding: 'json' }) as unknown as Sub;
      this.subs.set(name, s);
    }
    return s;
  }

  async batch(ops: BatchOp[], opts: BatchOptions = {}): Promise<WriteResult> {
    const checked = ops.map((op) => {
      if (!(op.namespace instanceof LevelNamespace) || op.namespace.store !== this) throw new TypeError('metadata store: a batch op names a namespace of another store');
      return checkOp(op.namespace.name, op.type, op.key, op.type === 'put' ? op.value : undefined);
    });
    return this.write(checked, opts);
  }

  /** @internal */
  async write(ops: CheckedOp[], opts: BatchOptions): Promise<WriteResult> {
    if (opts.atomic !== false) checkAtomicBatch(ops, this.maxTxnOps);
    if (ops.length === 0) return NONE;
    // The JSON text is written through a utf8 view of the sublevel, so what is on disk is
    // exactly the text the limits were checked on (the json encoding would stringify again).
    const batch = ops.map((o) =>
      o.json === undefined
        ? { type: 'del' as const, sublevel: this.sub(o.ns), key: o.key }
        : { type: 'put' as const, sublevel: this.sub(o.ns), key: o.key, value: o.json, valueEncoding: 'utf8' },
    );
    await this.db.batch(batch as never, { sync: opts.sync !== false } as never);
    return NONE;
  }

  async close(): Promise<void> {
    if (this.ownsDb) await this.db.close();
  }
}

class LevelNamespace<V> implements Namespace<V> {
  constructor(
    readonly store: LevelMetadataStore,
    readonly name: string,
  ) {}

  private get sub(): Sub {
    return this.store.sub(this.name);
  }

  async get(key: string): Promise<V | undefined> {
    checkKey(key);
    return (await this.sub.get(key)) as V | undefined;
  }

  async getEntry(key: string): Promise<Entry<V>> {
    return { value: await this.get(key), revision: 0, modRevision: 0 };
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
    const sub = this.sub;
    const opts: Record<string, unknown> = {};
    for (const k of ['gt', 'gte', 'lt', 'lte', 'reverse', 'limit'] as const) if (range[k] !== undefined) opts[k] = range[k];
    async function* pages(): AsyncGenerator<Array<[string, V]>> {
      const it = sub.iterator(opts);
      try {
        for (;;) {
          const page = await it.nextv(PAGE_ENTRIES);
          if (page.length === 0) return;
          yield page as Array<[string, V]>;
        }
      } finally {
        await it.close();
      }
    }
    async function* entries(): AsyncGenerator<[string, V]> {
      // abstract-level's iterator closes itself when the loop ends or breaks.
      for await (const [k, v] of sub.iterator(opts)) yield [k as string, v as V];
    }
    const gen = entries();
    return {
      revision: undefined,
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
