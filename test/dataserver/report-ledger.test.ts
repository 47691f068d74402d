// The data server's block reports kept by change (dataserver/report-ledger.ts) and read by
// the report session (dataserver/report-session.ts): every kind of change to a block shows
// in the next delta, and the running digest is always the digest of the store's reports.
// Then, over random histories (blocks changed, flagged, mutated in place, removed, created,
// brought back; answers acknowledged, lost, refused, partial), sessions reading one ledger
// send exactly what sessions reading the whole list of store.reports() send.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Block, BlockFile } from '../../dataserver/block.ts';
import { BlockStore } from '../../dataserver/block-store.ts';
import { META_INCOMPLETE, META_READONLY, META_SEALED, metaWith } from '../../dataserver/needle-index.ts';
import { ReportLedger, UNCHANGED_FIELDS, type ReportLedgerOptions } from '../../dataserver/report-ledger.ts';
import { ReportSession } from '../../dataserver/report-session.ts';
import { digestOf } from '../../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../../src/wire/protocol.ts';
import { tempDir } from '../helpers/proc.ts';

const BLOCK_SIZE = 64 * 1024;
const ok = (m: ReportMessage): ReportAck => ({ session: m.session, ack: m.seq });
const meta = (key: bigint) => ({ key, cookie: Number(key), uploadTime: 1_700_000_000_000, mime: 'image/jpeg', owner: '' });
const whole = () => store.reports({ completeOnly: true });

let store: BlockStore;
let cleanup: () => void;
let dir: string;
beforeEach(async () => {
  ({ dir, cleanup } = tempDir('ugcfs-ledger-'));
  store = await BlockStore.open({ dir, blockSize: BLOCK_SIZE, fsync: false });
});
afterEach(async () => {
  // made-up blocks (below) have no file or writer to close
  for (const [id, b] of store.blocks) if (b.writer === undefined) store.blocks.delete(id);
  await store.close();
  cleanup();
});

/** A session whose full report was acknowledged. */
function registered(held: () => readonly BlockReport[] | ReportLedger): ReportSession {
  const s = new ReportSession({ pageBlocks: 2 });
  const [ask] = s.next(held());
  s.answered(ask!, { session: ask!.session, ack: 0, full: true });
  for (const m of s.next(held())) expect(s.answered(m, ok(m))).toBe(true);
  expect(s.wantsFull).toBe(false);
  return s;
}

describe('the report ledger over a real store', () => {
  let ledger: ReportLedger;
  let session: ReportSession;
  /** One beat, acknowledged: what its delta named. After it the ledger is the store's picture. */
  const beat = () => {
    ledger.refresh(store.blocks);
    expect(ledger.digest).toBe(digestOf(whole()));
    expect(ledger.count).toBe(whole().length);
    expect(ledger.list()).toEqual(whole());
    const [d] = session.next(ledger);
    expect(d).toMatchObject({ kind: 'delta', count: ledger.count, digest: ledger.digest });
    expect(session.answered(d!, ok(d!))).toBe(true);
    return { ids: d!.blocks.map((r) => r.id), removed: d!.removed ?? [], blocks: d!.blocks };
  };
  /** The next delta names `id` alone, and says what it now is. */
  const named = (id: number): BlockReport => {
    const d = beat();
    expect(d).toMatchObject({ ids: [id], removed: [] });
    expect(beat()).toMatchObject({ ids: [], removed: [] }); // acknowledged: not sent again
    return d.blocks[0]!;
  };
  const removed = (id: number) => {
    expect(beat()).toMatchObject({ ids: [], removed: [id] });
    expect(beat()).toMatchObject({ ids: [], removed: [] });
  };

  beforeEach(async () => {
    await store.createBlock(1);
    await store.createBlock(2);
    ledger = new ReportLedger();
    ledger.refresh(store.blocks);
    session = registered(() => ledger);
  });

  it('names each changed block in the next delta: writes, deletes, seals, read-only flips, compactions, removals', async () => {
    expect(beat()).toMatchObject({ ids: [], removed: [] });
    await store.createBlock(3);
    expect(named(3)).toMatchObject({ size: 0, liveCount: 0, sealed: false, readonly: false });
    await store.put(1, meta(1n), Buffer.alloc(3000, 1));
    const written = named(1);
    expect(written.liveCount).toBe(1);
    expect(written.liveBytes).toBeGreaterThan(3000); // the record's header counts too
    await store.delete(1, 1n, 1);
    const afterDelete = named(1);
    expect(afterDelete).toMatchObject({ liveCount: 0, liveBytes: 0 });
    expect(afterDelete.deletedBytes).toBeGreaterThan(0);
    expect((await store.setReadonly(2, true)).readonly).toBe(true);
    expect(named(2).readonly).toBe(true);
    await store.setReadonly(2, false);
    expect(named(2).readonly).toBe(false);

    // Written until full: the put that does not fit seals the block.
    let key = 10n;
    let sealed = false;
    while (!sealed) {
      sealed = await store.put(1, meta(key), Buffer.alloc(3000, 2)).then(() => false, (err) => err.code === 'UGCFS_ERR_BLOCK_READONLY');
      key++;
      if (!sealed) expect(named(1).liveCount).toBe(Number(key - 10n));
    }
    expect(named(1)).toMatchObject({ sealed: true, readonly: true });
    await store.compact(1);
    expect(named(1)).toMatchObject({ gen: 1, sealed: true });

    // States that only live in memory: a write failure, a pull under way, an incomplete copy.
    store.block(3).failed = true;
    expect(named(3).readonly).toBe(true);
    store.block(3).pulling = true;
    removed(3);
    store.block(3).pulling = false;
    expect(named(3).id).toBe(3);
    const b3 = store.block(3);
    b3.meta = metaWith(b3.meta, { flags: b3.meta.flags | META_INCOMPLETE });
    removed(3);
    b3.meta = metaWith(b3.meta, { flags: b3.meta.flags & ~META_INCOMPLETE });
    expect(named(3).id).toBe(3);
    // A meta changed in place, not replaced, is still seen: fields are compared, not objects.
    (store.block(2).meta as { liveBytes: number }).liveBytes += 7;
    expect(named(2).liveBytes).toBe(7);

    await store.deleteBlock(3);
    removed(3);
    await store.put(2, meta(5000n), Buffer.alloc(100, 3));
    expect(named(2).liveCount).toBe(1);
    await store.quarantineBlock(2, 'test');
    removed(2);
    expect(ledger.maxId).toBe(1);
    await store.createBlock(7);
    expect(named(7).id).toBe(7);
    expect(ledger.maxId).toBe(7);
  });

  it('compares every field a block report has', () => {
    expect(Object.keys(store.block(1).report()).sort()).toEqual([...UNCHANGED_FIELDS].sort());
  });

  it('a change its comparison cannot see is found by the periodic full check', () => {
    const checked = new ReportLedger({ verifyEvery: 3 });
    checked.refresh(store.blocks);
    const s = registered(() => checked);
    // As if Block.report() had come to fill a field from state the comparison does not read.
    const b = store.block(2);
    const plain = Block.prototype.report;
    b.report = () => ({ ...plain.call(b), liveCount: 99 });
    const beats: number[][] = [];
    const corrected: number[] = [];
    for (let i = 0; i < 3; i++) {
      corrected.push(checked.refresh(store.blocks));
      const [d] = s.next(checked);
      s.answered(d!, ok(d!));
      beats.push(d!.blocks.map((r) => r.id));
    }
    expect(corrected).toEqual([0, 1, 0]); // pass 3 (the registration's was pass 1) corrected it
    expect(beats).toEqual([[], [2], []]);
    expect(checked.digest).toBe(digestOf(whole()));
    // A digest gone wrong (a bug in the bookkeeping) is summed again.
    (checked as unknown as { sum: { hi: number } }).sum.hi ^= 1;
    expect(checked.digest).not.toBe(digestOf(whole()));
    for (let i = 0; i < 3; i++) checked.refresh(store.blocks);
    expect(checked.digest).toBe(digestOf(whole()));
  });
});

/** A seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** An answer of the name server to `m`, picked at random among those it may give. */
function answer(m: ReportMessage, rand: () => number): ReportAck | undefined | 'lost' {
  const y = rand();
  if (y < 0.06) return 'lost';
  if (y < 0.08) return undefined;
  if (m.session === '-') return { session: m.session, ack: 0, full: true, ...(y < 0.5 ? { wait: true } : {}) };
  if (y < 0.1) return { session: m.session, ack: m.kind === 'full' ? 0 : m.seq - 1, full: true };
  if (y < 0.12) return { session: m.session, ack: m.kind === 'full' ? 0 : m.seq - 1, full: true, wait: true };
  if (y < 0.2 && m.kind === 'delta') return { session: m.session, ack: m.seq - 1 };
  if (y < 0.21 && m.kind === 'full') return { session: m.session, ack: m.seq - 1 };
  return { session: m.session, ack: m.seq };
}

const byId = (a: BlockReport, b: BlockReport) => a.id - b.id;
/** A message with its blocks and removals in id order (the two sessions may list them in different orders). */
const normal = (m: ReportMessage): ReportMessage => ({ ...m, blocks: [...m.blocks].sort(byId), ...(m.removed ? { removed: [...m.removed].sort((a, b) => a - b) } : {}) });

/** Made-up blocks in the store's map: reports read only their state, never their files. */
function madeUp(id: number, rand: () => number): Block {
  const m = metaWith({ flags: rand() < 0.3 ? META_SEALED : 0, gen: Math.floor(rand() * 3), end: Math.floor(rand() * 1e6), liveCount: Math.floor(rand() * 50), liveBytes: Math.floor(rand() * 1e6), deletedBytes: 0 });
  return new Block(id, dir, new BlockFile(m.gen, `${dir}/${id}.blk`, undefined as never), m);
}

/** What happens to one block between two beats, picked at random. */
function change(b: Block, rand: () => number): void {
  const x = rand();
  const flags = b.meta.flags;
  if (x < 0.3) b.meta = metaWith(b.meta, { end: b.meta.end + 100, liveCount: b.meta.liveCount + 1, liveBytes: b.meta.liveBytes + 100 });
  else if (x < 0.35) b.meta = metaWith(b.meta, { deletedBytes: b.meta.deletedBytes + 50 });
  else if (x < 0.4) b.meta = metaWith(b.meta, { end: b.meta.end + 8 }); // each field alone, too
  else if (x < 0.48) b.meta = metaWith(b.meta, { flags: flags ^ META_READONLY });
  else if (x < 0.53) b.meta = metaWith(b.meta, { flags: flags | META_SEALED });
  else if (x < 0.58) b.meta = metaWith(b.meta, { gen: b.meta.gen + 1, deletedBytes: 0 });
  else if (x < 0.63) b.meta = metaWith(b.meta, { flags: flags ^ META_INCOMPLETE });
  else if (x < 0.68) b.pulling = !b.pulling;
  else if (x < 0.73) b.compacting = !b.compacting;
  else if (x < 0.76) b.failed = !b.failed;
  else if (x < 0.8) (b.meta as { liveCount: number }).liveCount += 1; // in place
  else if (x < 0.85) b.meta = metaWith(b.meta); // a new meta, the same report
  // else: touched, nothing changed
}

/** Several name servers' sessions over one ledger, each beside a session over the whole list. */
function run(seed: number, beats: number, opts: ReportLedgerOptions, servers: number) {
  const rand = rng(seed);
  for (let id = 1; id <= 40; id++) store.blocks.set(id, madeUp(id, rand));
  let nextId = 41;
  const gone: Block[] = [];
  const ledger = new ReportLedger(opts);
  const sessionIds = () => {
    let n = 0;
    return () => `s${++n}`;
  };
  const pairs = Array.from({ length: servers }, () => ({ mine: new ReportSession({ pageBlocks: 7, newSessionId: sessionIds() }), theirs: new ReportSession({ pageBlocks: 7, newSessionId: sessionIds() }) }));
  const seen = { deltas: 0, fulls: 0, named: 0, corrected: 0 };
  for (let beat = 0; beat < beats; beat++) {
    for (const { mine, theirs } of pairs) {
      // what happened on the server since the last beat
      const changes = Math.floor(rand() * 4);
      for (let i = 0; i < changes; i++) {
        const ids = [...store.blocks.keys()];
        const b = store.blocks.get(ids[Math.floor(rand() * ids.length)]!);
        const x = rand();
        if (x < 0.06) store.blocks.set(nextId, madeUp(nextId++, rand));
        else if (x < 0.1 && gone.length > 0) {
          const back = gone.splice(Math.floor(rand() * gone.length), 1)[0]!;
          store.blocks.set(back.id, back); // back, last in the map's order
        } else if (!b) continue;
        else if (x < 0.16) {
          store.blocks.delete(b.id);
          gone.push(b);
        } else change(b, rand);
      }
      seen.corrected += ledger.refresh(store.blocks);
      expect(ledger.digest).toBe(digestOf(whole()));
      // one beat as dataserver/heartbeat.ts sends it: a full report given the turn goes in the same beat (once)
      for (let round = 0; round < 2; round++) {
        const wasFull = theirs.sendsFull;
        const a = mine.next(ledger);
        const b = theirs.next(whole());
        expect(a.map(normal)).toEqual(b.map(normal));
        let complete = true;
        for (const m of a) {
          if (m.kind === 'full') seen.fulls++;
          else if (m.session !== '-') {
            seen.deltas++;
            seen.named += m.blocks.length + (m.removed?.length ?? 0);
          }
          const ack = answer(m, rand);
          if (ack === 'lost') {
            mine.unanswered(m);
            theirs.unanswered(m);
            complete = false;
            break;
          }
          const going = mine.answered(m, ack);
          expect(theirs.answered(m, ack)).toBe(going);
          if (!going) {
            complete = false;
            break;
          }
        }
        expect(mine.wantsFull).toBe(theirs.wantsFull);
        expect(mine.sendsFull).toBe(theirs.sendsFull);
        if (complete || (wasFull && round > 0) || !theirs.sendsFull) break;
      }
    }
  }
  return seen;
}

describe('a session over the ledger', () => {
  it('sends what a session over the whole list sends, over many random histories', () => {
    const total = { deltas: 0, fulls: 0, named: 0, corrected: 0 };
    let seed = 0;
    // a long journal, and one so short that a session often finds it past what it kept; full checks often
    for (const opts of [{ verifyEvery: 5 }, { keep: 2, verifyEvery: 7 }] as ReportLedgerOptions[]) {
      for (let i = 0; i < 12; i++) {
        for (const [id, b] of store.blocks) if (b.writer === undefined) store.blocks.delete(id);
        const r = run(++seed, 150, opts, 1 + (seed % 3));
        for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += r[k];
      }
    }
    expect(total.deltas).toBeGreaterThan(3000);
    expect(total.fulls).toBeGreaterThan(300);
    expect(total.named).toBeGreaterThan(3000);
    expect(total.corrected).toBe(0); // the full checks found nothing the comparison missed
  });
});
