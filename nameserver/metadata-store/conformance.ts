// The conformance suite every MetadataStore implementation runs (after abstract-level's
// shared test suite): test/metadata-store/leveldb.test.ts and etcd.test.ts call
//
//   metadataStoreSuite('leveldb', async () => fixture);
//
// It lives beside the interface so a new implementation finds it; the name server never
// imports it (it needs vitest, a dev dependency).
import { describe, expect, it } from 'vitest';
import { isUgcfsError } from '../../src/base/errors.ts';
import { MAX_KEY_BYTES, MAX_VALUE_BYTES } from './limits.ts';
import type { MetadataStore, Namespace, RangeOptions } from './types.ts';

export interface StoreFixture {
  /** a handle on this fixture's data (empty the first time); again after close() to reopen */
  open(): Promise<MetadataStore>;
  /** a second handle used at the same time as the first (another process's view), if the backend allows it */
  openAnother?(): Promise<MetadataStore>;
  /** removes the data */
  destroy(): Promise<void>;
}

export interface SuiteOptions {
  /** skip every test, printing this reason */
  skip?: string | undefined;
}

const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function expectError(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  let err: unknown;
  try {
    await p;
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeDefined();
  expect(isUgcfsError(err) ? err.code : String(err)).toBe(code);
  if (message) expect((err as Error).message).toMatch(message);
}

async function keys<V>(ns: Namespace<V>, r?: RangeOptions): Promise<string[]> {
  return (await ns.iterator(r).all()).map(([k]) => k);
}

export function metadataStoreSuite(name: string, factory: () => Promise<StoreFixture>, o: SuiteOptions = {}): void {
  describe.skipIf(o.skip !== undefined)(`metadata store conformance: ${name}`, () => {
    async function withStore(fn: (s: MetadataStore, fx: StoreFixture) => Promise<void>): Promise<void> {
      const fx = await factory();
      let s: MetadataStore | undefined = await fx.open();
      try {
        await fn(s, fx);
      } finally {
        await s?.close().catch(() => {});
        s = undefined;
        await fx.destroy();
      }
    }

    it('puts, gets and deletes', () =>
      withStore(async (s) => {
        const ns = s.namespace<{ n: number }>('things');
        expect(await ns.get('a')).toBeUndefined();
        const w = await ns.put('a', { n: 1 });
        expect(w.revision).toBeGreaterThanOrEqual(0);
        expect(await ns.get('a')).toEqual({ n: 1 });
        await ns.put('a', { n: 2 });
        expect(await ns.get('a')).toEqual({ n: 2 });
        const e = await ns.getEntry('a');
        expect(e.value).toEqual({ n: 2 });
        await ns.del('a');
        expect(await ns.get('a')).toBeUndefined();
        expect((await ns.getEntry('a')).value).toBeUndefined();
        await ns.del('never-there');
        await expectError(ns.get(''), 'UGCFS_ERR_INTERNAL', /non-empty/);
      }));

    it('round-trips JSON values as JSON.parse(JSON.stringify(v))', () =>
      withStore(async (s) => {
        const ns = s.namespace<unknown>('json');
        const values: Record<string, unknown> = {
          object: { id: 17, replication: 2, state: 'sealed', replicas: ['ds-1', 'ds-2'], createdAt: 1_700_000_000_000 },
          nested: { a: [1, [2, [3, { b: null }]]], c: { d: { e: 'f' } } },
          string: 'héllo wörld ✓ 😀 \u0000 "quoted" \\ /',
          empty: '',
          int: Number.MAX_SAFE_INTEGER,
          negative: -1.5e-7,
          zero: 0,
          boolean: false,
          null: null,
          array: [],
          dropsUndefined: { a: 1, b: undefined },
          nan: Number.NaN,
          date: new Date(0),
        };
        for (const [k, v] of Object.entries(values)) await ns.put(k, v);
        for (const [k, v] of Object.entries(values)) expect(await ns.get(k), k).toEqual(JSON.parse(JSON.stringify(v)));
        expect(await ns.get('null')).toBeNull();
        const all = new Map(await ns.iterator().all());
        expect(all.get('null')).toBeNull();
        expect(all.size).toBe(Object.keys(values).length);
      }));

    it('refuses values that are not JSON, changing nothing', () =>
      withStore(async (s) => {
        const ns = s.namespace<unknown>('json');
        await expectError(ns.put('a', 10n), 'UGCFS_ERR_INTERNAL', /JSON/);
        await expectError(ns.put('b', undefined), 'UGCFS_ERR_INTERNAL', /JSON/);
        await expectError(ns.put('c', () => 1), 'UGCFS_ERR_INTERNAL', /JSON/);
        expect(await keys(ns)).toEqual([]);
      }));

    it('keeps namespaces apart', () =>
      withStore(async (s) => {
        const a = s.namespace<string>('a');
        const ab = s.namespace<string>('ab');
        const aDash = s.namespace<string>('a-b');
        const b = s.namespace<string>('b');
        await a.put('k', 'in a');
        await ab.put('k', 'in ab');
        await aDash.put('k', 'in a-b');
        await b.put('x', 'in b');
        expect(await a.get('k')).toBe('in a');
        expect(await ab.get('k')).toBe('in ab');
        expect(await aDash.get('k')).toBe('in a-b');
        expect(await b.get('k')).toBeUndefined();
        expect(await a.iterator().all()).toEqual([['k', 'in a']]);
        expect(await a.iterator({ reverse: true }).all()).toEqual([['k', 'in a']]);
        expect(await ab.iterator().all()).toEqual([['k', 'in ab']]);
        expect(await b.iterator().all()).toEqual([['x', 'in b']]);
        await a.del('k');
        expect(await ab.get('k')).toBe('in ab');
        // the same name is the same data
        expect(await s.namespace<string>('ab').get('k')).toBe('in ab');
        for (const bad of ['', 'A', '_x', 'a/b', 'a!b', 'a b', 'x'.repeat(65)]) expect(() => s.namespace(bad), bad).toThrow(/namespace name/);
      }));

    it('iterates in UTF-8 byte order with every range option', () =>
      withStore(async (s) => {
        const ns = s.namespace<number>('order');
        const all = ['a', 'b', 'c', 'd', 'e', 'aa', 'a0', 'B', '0', '10', '9', 'é', '\uFFFD', '😀', 'zz', '~'];
        for (const [i, k] of all.entries()) await ns.put(k, i);
        const sorted = [...all].sort(byBytes);
        // a surrogate pair sorts after U+FFFD in UTF-8, before it in UTF-16
        expect(sorted.indexOf('😀')).toBeGreaterThan(sorted.indexOf('\uFFFD'));
        expect(await keys(ns)).toEqual(sorted);
        expect(await keys(ns, { reverse: true })).toEqual([...sorted].reverse());
        const within = (lo: (k: string) => boolean, hi: (k: string) => boolean) => sorted.filter((k) => lo(k) && hi(k));
        const ge = (x: string) => (k: string) => byBytes(k, x) >= 0;
        const gt = (x: string) => (k: string) => byBytes(k, x) > 0;
        const le = (x: string) => (k: string) => byBytes(k, x) <= 0;
        const lt = (x: string) => (k: string) => byBytes(k, x) < 0;
        const any = () => true;
        const cases: Array<[RangeOptions, string[]]> = [
          [{ gte: 'b' }, within(ge('b'), any)],
          [{ gt: 'b' }, within(gt('b'), any)],
          [{ lte: 'b' }, within(any, le('b'))],
          [{ lt: 'b' }, within(any, lt('b'))],
          [{ gte: 'a', lt: 'c' }, within(ge('a'), lt('c'))],
          [{ gt: 'a', lte: 'c' }, within(gt('a'), le('c'))],
          [{ gte: 'aa', lte: 'aa' }, ['aa']],
          [{ gt: 'aa', lt: 'aa' }, []],
          [{ gte: 'zzz' }, within(ge('zzz'), any)],
          [{ gte: '\u{10FFFF}' }, []],
          [{ lt: '0' }, []],
          [{ gte: 'c', lt: 'a' }, []],
          [{ gte: 'a', lt: 'b' }, ['a', 'a0', 'aa']],
          [{ gte: 'é' }, within(ge('é'), any)],
          [{ gt: '\uFFFD' }, ['😀']],
          [{ limit: 3 }, sorted.slice(0, 3)],
          [{ limit: 0 }, []],
          [{ limit: -1 }, sorted],
          [{ limit: 100 }, sorted],
          [{ gte: 'b', limit: 2 }, within(ge('b'), any).slice(0, 2)],
        ];
        for (const [r, want] of cases) {
          expect(await keys(ns, r), JSON.stringify(r)).toEqual(want);
          // reverse: the same range from the other end, then the limit
          const inRange = sorted.filter((k) => keysMatch(k, r)).reverse();
          const n = r.limit !== undefined && r.limit >= 0 ? r.limit : Infinity;
          expect(await keys(ns, { ...r, reverse: true }), `reverse ${JSON.stringify(r)}`).toEqual(inRange.slice(0, n));
        }
        // values come with their keys
        expect(await ns.iterator({ gte: 'b', lte: 'c' }).all()).toEqual([['b', all.indexOf('b')], ['c', all.indexOf('c')]]);
      }));

    it('iterates across many entries, and stops early when the loop breaks', () =>
      withStore(async (s) => {
        const ns = s.namespace<number>('many');
        const n = 40;
        await ns.batch(Array.from({ length: n }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(3, '0')}`, value: i })));
        const got = await ns.iterator().all();
        expect(got.map(([, v]) => v)).toEqual(Array.from({ length: n }, (_, i) => i));
        expect((await ns.iterator({ reverse: true, limit: 25 }).all()).map(([, v]) => v)).toEqual(Array.from({ length: 25 }, (_, i) => n - 1 - i));
        expect((await ns.iterator({ gt: 'k010', limit: 13 }).all()).map(([, v]) => v)).toEqual(Array.from({ length: 13 }, (_, i) => 11 + i));
        const seen: number[] = [];
        for await (const [, v] of ns.iterator()) {
          seen.push(v);
          if (seen.length === 5) break;
        }
        expect(seen).toEqual([0, 1, 2, 3, 4]);
        // iteration is a snapshot on etcd; on LevelDB too (an iterator reads a snapshot)
        const it = ns.iterator()[Symbol.asyncIterator]();
        const first = await it.next();
        expect(first.value).toEqual(['k000', 0]);
        await ns.put('k0005', 999);
        await ns.del('k039');
        const rest: string[] = [];
        for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value[0]);
        expect(rest).toHaveLength(n - 1);
        expect(rest).not.toContain('k0005');
        expect(rest).toContain('k039');
        // a page at a time: the same entries, in order, in non-empty pages, ranges kept
        const paged: Array<[string, number]> = [];
        for await (const page of ns.iterator({ gte: 'k005', limit: 30 }).pages()) {
          expect(page.length).toBeGreaterThan(0);
          paged.push(...page);
        }
        expect(paged).toEqual(await ns.iterator({ gte: 'k005', limit: 30 }).all());
        expect(paged.map(([, v]) => v)).toEqual(Array.from({ length: 30 }, (_, i) => 5 + i));
      }));

    it('applies a batch atomically, across namespaces', () =>
      withStore(async (s) => {
        const blocks = s.namespace<{ id: number }>('blocks');
        const meta = s.namespace<string>('meta');
        await blocks.put('1', { id: 1 });
        await meta.put('gone', 'soon');
        await s.batch([
          { type: 'put', namespace: blocks, key: '2', value: { id: 2 } },
          { type: 'put', namespace: meta, key: 'seq', value: '100' },
          { type: 'del', namespace: meta, key: 'gone' },
        ]);
        expect(await keys(blocks)).toEqual(['1', '2']);
        expect(await meta.iterator().all()).toEqual([['seq', '100']]);
        await blocks.batch([{ type: 'del', key: '1' }, { type: 'put', key: '3', value: { id: 3 } }]);
        expect(await keys(blocks)).toEqual(['2', '3']);
        await blocks.batch([]);
      }));

    it('a batch with a failing op changes nothing', () =>
      withStore(async (s) => {
        const a = s.namespace<unknown>('a');
        const b = s.namespace<unknown>('b');
        await a.put('keep', 1);
        await b.put('keep', 1);
        const failing: Array<[string, unknown, RegExp]> = [
          ['a value that is not JSON', 10n, /JSON/],
          ['an empty key', '', /non-empty/],
          ['a value over the limit', 'x'.repeat(MAX_VALUE_BYTES), /limit/],
          ['a lone surrogate in a key', '\uD800', /well-formed/],
        ];
        for (const [what, bad, msg] of failing) {
          const op = what.includes('key')
            ? { type: 'put' as const, namespace: b, key: bad as string, value: 3 }
            : { type: 'put' as const, namespace: b, key: 'bad', value: bad };
          let err: unknown;
          try {
            await s.batch([
              { type: 'put', namespace: a, key: 'keep', value: 2 },
              { type: 'put', namespace: a, key: 'new', value: 2 },
              { type: 'del', namespace: b, key: 'keep' },
              op,
            ]);
          } catch (e) {
            err = e;
          }
          expect(err, what).toBeInstanceOf(Error);
          expect((err as Error).message, what).toMatch(msg);
          expect(await a.iterator().all(), what).toEqual([['keep', 1]]);
          expect(await b.iterator().all(), what).toEqual([['keep', 1]]);
        }
        let err: unknown;
        try {
          await a.batch([{ type: 'put', key: 'x', value: 1 }, { type: 'nope' as 'put', key: 'y', value: 1 }]);
        } catch (e) {
          err = e;
        }
        expect((err as Error).message).toMatch(/'put' or 'del'/);
        expect(await keys(a)).toEqual(['keep']);
      }));

    it('refuses an atomic batch over one transaction\'s size, and splits it when atomicity is not needed', () =>
      withStore(async (s) => {
        const ns = s.namespace<number>('big');
        const ops = Array.from({ length: 129 }, (_, i) => ({ type: 'put' as const, key: `k${String(i).padStart(3, '0')}`, value: i }));
        await expectError(ns.batch(ops), 'UGCFS_ERR_TOO_LARGE', /129 ops.*128.*atomic: false/);
        expect(await keys(ns)).toEqual([]);
        await ns.batch(ops.slice(0, 128));
        expect(await keys(ns)).toHaveLength(128);
        await ns.batch(ops.map((o) => ({ type: 'del' as const, key: o.key })), { atomic: false });
        expect(await keys(ns)).toEqual([]);
        await ns.batch(ops, { atomic: false });
        expect(await keys(ns)).toHaveLength(129);
        // two values of nearly 1 MiB do not fit one etcd request
        const big = 'y'.repeat(MAX_VALUE_BYTES - 2);
        const two = [{ type: 'put' as const, key: 'big1', value: big as unknown as number }, { type: 'put' as const, key: 'big2', value: big as unknown as number }];
        await expectError(ns.batch(two), 'UGCFS_ERR_TOO_LARGE', /bytes.*atomic: false/);
        expect(await ns.get('big1')).toBeUndefined();
        await ns.batch(two, { atomic: false });
        expect(((await ns.get('big2')) as unknown as string).length).toBe(big.length);
      }));

    it('keeps every write across a close and a reopen', () =>
      withStore(async (s0, fx) => {
        let s = s0;
        const ns = s.namespace<{ v: number }>('durable');
        await ns.put('a', { v: 1 });
        await ns.put('b', { v: 2 }, { sync: false });
        await ns.batch([{ type: 'put', key: 'c', value: { v: 3 } }, { type: 'del', key: 'b' }]);
        await s.namespace<string>('other').put('x', 'y', { sync: true });
        await s.close();
        s = await fx.open();
        try {
          expect(await s.namespace<{ v: number }>('durable').iterator().all()).toEqual([['a', { v: 1 }], ['c', { v: 3 }]]);
          expect(await s.namespace<string>('other').get('x')).toBe('y');
        } finally {
          await s.close();
        }
      }));

    it('gives last-write-wins to concurrent writers', () =>
      withStore(async (s, fx) => {
        const other = fx.openAnother ? await fx.openAnother() : undefined;
        try {
          const handles = [s.namespace<number>('lww'), s.namespace<number>('lww'), ...(other ? [other.namespace<number>('lww')] : [])];
          const writes = await Promise.all(Array.from({ length: 30 }, (_, i) => handles[i % handles.length]!.put('k', i).then((r) => ({ i, revision: r.revision }))));
          const got = await handles[0]!.get('k');
          expect(writes.map((w) => w.i)).toContain(got);
          const top = writes.reduce((m, w) => (w.revision > m.revision ? w : m));
          // with revisions (etcd), the value is the write with the highest revision
          if (top.revision > 0) expect(got).toBe(top.i);
          // every handle sees the same value
          for (const h of handles) expect(await h.get('k')).toBe(got);
          // a write that starts after all of them wins
          await handles[handles.length - 1]!.put('k', 1000);
          for (const h of handles) expect(await h.get('k')).toBe(1000);
        } finally {
          await other?.close();
        }
      }));

    it('stores values up to the limit and refuses larger ones clearly', () =>
      withStore(async (s) => {
        const ns = s.namespace<string>('large');
        const atLimit = 'é'.repeat((MAX_VALUE_BYTES - 2) / 2); // JSON text: quotes + 2 bytes per é
        expect(Buffer.byteLength(JSON.stringify(atLimit))).toBe(MAX_VALUE_BYTES);
        await ns.put('max', atLimit);
        expect(await ns.get('max')).toBe(atLimit);
        const over = atLimit + 'x';
        await expectError(ns.put('over', over), 'UGCFS_ERR_TOO_LARGE', new RegExp(`${MAX_VALUE_BYTES + 1} bytes.*limit of ${MAX_VALUE_BYTES}`));
        expect(await ns.get('over')).toBeUndefined();
        const longKey = 'k'.repeat(MAX_KEY_BYTES);
        await ns.put(longKey, 'v');
        expect(await ns.get(longKey)).toBe('v');
        await expectError(ns.put(longKey + 'k', 'v'), 'UGCFS_ERR_TOO_LARGE', /key/);
        expect(await keys(ns)).toEqual([longKey, 'max']);
      }));

    it('keeps any key: unicode, \'!\' and \'/\', and keys that look like other namespaces', () =>
      withStore(async (s) => {
        const ns = s.namespace<string>('keys');
        const other = s.namespace<string>('other');
        await other.put('x', 'other x');
        const ks = ['!', '!!', 'a!b', '!other!x', 'other/x', '/', '//', '/lead', 'trail/', 'a/b/c', '日本語/パス.jpg', '😀!/😀', ' spaced ', 'tab\tnew\nline', '\u0001', 'ÿ', 'Ā'];
        for (const k of ks) await ns.put(k, `v:${k}`);
        for (const k of ks) expect(await ns.get(k), JSON.stringify(k)).toBe(`v:${k}`);
        expect(await keys(ns)).toEqual([...ks].sort(byBytes));
        expect(await keys(ns, { gte: '/', lt: '0' })).toEqual(ks.filter((k) => k.startsWith('/')).sort(byBytes));
        expect(await other.iterator().all()).toEqual([['x', 'other x']]);
        expect(await ns.get('x')).toBeUndefined();
        await expectError(ns.put('\uDC00x', 'v'), 'UGCFS_ERR_INTERNAL', /well-formed/);
      }));
  });
}

/** For reverse iteration with a limit: the keys the range (without its limit) holds. */
function keysMatch(k: string, r: RangeOptions): boolean {
  if (r.gt !== undefined && byBytes(k, r.gt) <= 0) return false;
  if (r.gte !== undefined && byBytes(k, r.gte) < 0) return false;
  if (r.lt !== undefined && byBytes(k, r.lt) >= 0) return false;
  if (r.lte !== undefined && byBytes(k, r.lte) > 0) return false;
  return true;
}
