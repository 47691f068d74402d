// The block-report protocol end to end in one process: the data server's sender
// (dataserver/report-session.ts) and the name server's intake (nameserver/report-intake.ts)
// over a real block map on a real LevelDB, with the link between them made lossy by hand:
// requests lost, replies lost, messages repeated and reordered, the name server's picture
// damaged, the name server restarted or newly elected.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BlockStore } from '../../dataserver/block-store.ts';
import { ReportLedger } from '../../dataserver/report-ledger.ts';
import { MAX_UNANSWERED_DELTAS, ReportSession } from '../../dataserver/report-session.ts';
import { BlockMap, type BlockRecord } from '../../nameserver/block-map.ts';
import { Registry } from '../../nameserver/registry.ts';
import { ReportIntake, type FullReason } from '../../nameserver/report-intake.ts';
import { jsonSublevel, openStateDb, type RootDb } from '../../nameserver/state-db.ts';
import { digestOf } from '../../src/wire/heartbeat.ts';
import type { BlockReport, Heartbeat, ReportMessage } from '../../src/wire/protocol.ts';
import { tempDir } from '../helpers/proc.ts';

const DS = 'ds-1';
const BLOCKS = 10;

function report(id: number, size = 1000): BlockReport {
  return { id, size, liveCount: size / 100, liveBytes: size, deletedBytes: 0, sealed: false, readonly: false, gen: 0 };
}

const beat: Heartbeat = { id: DS, url: 'http://127.0.0.1:1', rack: '', freeBytes: 1e12, usedBytes: 0, blockSize: 1 << 20, blocks: [] };

describe('the report digest', () => {
  it('is pinned: every field counts, and both sides of every version compute the same', () => {
    const a = report(1);
    const b: BlockReport = { id: 7, size: 2 ** 40 + 5, liveCount: 3, liveBytes: 2 ** 33, deletedBytes: 17, sealed: true, readonly: true, gen: 2 };
    expect(digestOf([a])).toBe('f93ffb820ed81e87');
    expect(digestOf([b])).toBe('387b9bc15cd7e412');
    expect(digestOf([a, b])).toBe(digestOf([b, a])); // order does not matter
    expect(digestOf([])).toBe('0000000000000000');
    for (const change of [{ size: 1001 }, { liveCount: 11 }, { liveBytes: 999 }, { deletedBytes: 1 }, { sealed: true }, { readonly: true }, { gen: 1 }]) {
      expect(digestOf([{ ...a, ...change }]), JSON.stringify(change)).not.toBe(digestOf([a]));
    }
  });
});

describe('block reports', () => {
  let db: RootDb;
  let cleanup: () => void;
  let registry: Registry;
  let blocks: BlockMap;
  let intake: ReportIntake;
  let fulls: FullReason[];
  /** what the data server holds now */
  let held: Map<number, BlockReport>;
  let session: ReportSession;

  const current = () => [...held.values()].sort((a, b) => a.id - b.id);
  /** The name server's picture of ds-1: its copies' reports. */
  const seen = () => [...registry.get(DS)!.reports].map(([, r]) => r).sort((a, b) => a.id - b.id);
  const deliver = async (m: ReportMessage) => (await intake.apply(DS, m, (r) => blocks.has(r.id))).ack;
  /** One beat over a perfect link: every message delivered and its answer heard. */
  const beatOk = async () => {
    for (let round = 0; round < 2; round++) {
      let complete = true;
      for (const m of session.next(current())) {
        if (!session.answered(m, await deliver(m))) {
          complete = false;
          break;
        }
      }
      // asked for the turn and given it: the full report goes in the same beat
      if (complete || !session.sendsFull) return;
    }
  };

  /** The first beat: asks for the turn, sends the full report; what it asked is not counted below. */
  const register = async () => {
    await beatOk();
    expect(fulls).toEqual(['unknown-session']);
    fulls.length = 0;
  };

  beforeEach(async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    db = await openStateDb(t.dir);
    registry = new Registry(jsonSublevel(db, 'dataservers'), 60_000, Date.now());
    blocks = new BlockMap(jsonSublevel<BlockRecord>(db, 'blocks'), registry, 0);
    await registry.beat(beat, Date.now());
    for (let id = 1; id <= BLOCKS + 2; id++) await blocks.put({ id, replication: 1, state: 'writable', replicas: [DS], createdAt: 0 });
    fulls = [];
    intake = new ReportIntake(blocks, registry, { fullRequested: (r) => fulls.push(r) });
    held = new Map(Array.from({ length: BLOCKS }, (_, i) => [i + 1, report(i + 1)]));
    session = new ReportSession({ pageBlocks: 3 });
  });

  afterEach(async () => {
    await db.close();
    cleanup();
  });

  it('registers with a paged full report, then sends only what changed', async () => {
    // Never sent unasked: a small message asks for the turn first.
    const [ask] = session.next(current());
    expect(ask).toMatchObject({ kind: 'delta', blocks: [], count: BLOCKS, digest: digestOf(current()) });
    expect(session.answered(ask!, await deliver(ask!))).toBe(false);
    expect(session.sendsFull).toBe(true);
    fulls.length = 0;
    const first = session.next(current());
    expect(first.map((m) => [m.kind, m.seq, m.blocks.length, m.last ?? false])).toEqual([
      ['full', 1, 3, false],
      ['full', 2, 3, false],
      ['full', 3, 3, false],
      ['full', 4, 1, true],
    ]);
    for (const m of first) expect(session.answered(m, await deliver(m))).toBe(true);
    expect(seen()).toEqual(current());
    expect(session.wantsFull).toBe(false);

    held.set(4, report(4, 5000));
    held.delete(7);
    held.set(11, report(11));
    const [d] = session.next(current());
    expect(d).toMatchObject({ kind: 'delta', removed: [7], count: 10, digest: digestOf(current()) });
    expect(d!.blocks.map((b) => b.id).sort((a, b) => a - b)).toEqual([4, 11]);
    session.answered(d!, await deliver(d!));
    expect(seen()).toEqual(current());
    // Nothing changed: an empty delta, which still proves the two pictures agree.
    const [quiet] = session.next(current());
    expect(quiet!.blocks).toEqual([]);
    expect(await deliver(quiet!)).toEqual({ session: quiet!.session, ack: quiet!.seq });
    expect(fulls).toEqual([]);
  });

  it('a lost delta is carried by the next one; a lost reply repeats it harmlessly', async () => {
    await register();
    held.set(2, report(2, 2000));
    const [lost] = session.next(current());
    session.unanswered(lost!); // the request never arrived
    held.set(3, report(3, 3000));
    const [next] = session.next(current());
    expect(next!.blocks.map((b) => b.id).sort()).toEqual([2, 3]);
    await deliver(next!); // applied, but the reply is lost: the sender never hears of it
    held.delete(5);
    const [again] = session.next(current());
    expect(again!.blocks.map((b) => b.id).sort()).toEqual([2, 3]);
    expect(again!.removed).toEqual([5]);
    session.answered(again!, await deliver(again!));
    expect(seen()).toEqual(current());
    const [after] = session.next(current());
    expect(after!.blocks).toEqual([]); // acknowledged: not sent again
    expect(fulls).toEqual([]);
  });

  it('a name server away for a minute of beats gets a full report, not every delta since', async () => {
    await register();
    let last: ReportMessage | undefined;
    for (let i = 0; i < MAX_UNANSWERED_DELTAS; i++) {
      held.set(2, report(2, 2000 + 100 * i));
      [last] = session.next(current());
      expect(last!.kind).toBe('delta');
      expect(last!.session).not.toBe('-');
      session.unanswered(last!);
    }
    // the unanswered deltas are dropped: the session asks for the turn to send a full report
    const [ask] = session.next(current());
    expect(ask).toMatchObject({ session: '-', blocks: [] });
    expect(session.wantsFull).toBe(true);
    expect(session.answered(ask!, await deliver(ask!))).toBe(false);
    for (const m of session.next(current())) expect(session.answered(m, await deliver(m))).toBe(true);
    expect(seen()).toEqual(current());
    expect(session.wantsFull).toBe(false);
  });

  it('a duplicated or reordered delta changes nothing', async () => {
    await register();
    held.set(4, report(4, 100));
    const [older] = session.next(current());
    held.set(4, report(4, 200));
    const [newer] = session.next(current());
    const ack = await deliver(newer!);
    expect(ack.ack).toBe(newer!.seq);
    // The older one arrives late, then the newer one again: neither is applied.
    expect(await deliver(older!)).toEqual({ session: newer!.session, ack: newer!.seq });
    expect(await deliver(newer!)).toEqual({ session: newer!.session, ack: newer!.seq });
    expect(registry.get(DS)!.reports.get(4)!.size).toBe(200);
    session.answered(newer!, ack);
    session.answered(older!, ack);
    expect(seen()).toEqual(current());
    expect(fulls).toEqual([]);
  });

  it('a digest mismatch makes the name server ask for a full report, which repairs its picture', async () => {
    await register();
    // The pictures drift: a change the name server never hears of (a sender's bug, say).
    held.set(5, report(5, 9000));
    const [real] = session.next(current());
    const d = { ...real!, blocks: real!.blocks.filter((b) => b.id !== 5) };
    const ack = await deliver(d);
    expect(ack.full).toBe(true);
    expect(fulls).toEqual(['digest']);
    expect(registry.get(DS)!.reports.get(5)!.size).toBe(1000);
    expect(session.answered(d, ack)).toBe(false);
    expect(session.wantsFull).toBe(true);
    const pages = session.next(current());
    expect(pages[0]!.kind).toBe('full');
    for (const m of pages) session.answered(m, await deliver(m));
    expect(seen()).toEqual(current());
    expect(session.wantsFull).toBe(false);
  });

  it('a full report forgets copies it does not name, and refuses blocks never allocated', async () => {
    await register();
    held.delete(1);
    held.set(99, report(99)); // never allocated: refused, yet part of the digest
    session.restart();
    await beatOk();
    expect(seen().map((r) => r.id)).toEqual([2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(fulls).toEqual(['unknown-session']); // the restarted session asked for its turn
    const [d] = session.next(current());
    expect((await deliver(d!)).full).toBeUndefined();
  });

  it('pages out of order, an unknown session, and a new leader each ask for a full report', async () => {
    const [ask] = session.next(current());
    session.answered(ask!, await deliver(ask!));
    const pages = session.next(current());
    await deliver(pages[0]!);
    const gap = await deliver(pages[2]!);
    expect(gap.full).toBe(true);
    expect(session.answered(pages[2]!, gap)).toBe(false);
    await beatOk();
    expect(seen()).toEqual(current());

    // A name server that restarted knows no session.
    intake = new ReportIntake(blocks, registry, { fullRequested: (r) => fulls.push(r) });
    const [d1] = session.next(current());
    const a1 = await deliver(d1!);
    expect(a1.full).toBe(true);
    session.answered(d1!, a1);
    await beatOk();
    // A standby just promoted forgets every session: deltas are not trusted until a full report.
    intake.resetAll();
    const [d2] = session.next(current());
    expect((await deliver(d2!)).full).toBe(true);
    // the first ask, the gap, the ask after it, the restarted name server, the new leader
    expect(fulls).toEqual(['unknown-session', 'page-gap', 'unknown-session', 'unknown-session', 'unknown-session']);
  });

  it('full reports take turns: a server asked while the turns are taken waits, then goes first come first served', async () => {
    intake = new ReportIntake(blocks, registry, { fullRequested: (r) => fulls.push(r) }, { fullAtOnce: 1 });
    await registry.beat({ ...beat, id: 'ds-2' }, Date.now());
    await registry.beat({ ...beat, id: 'ds-3' }, Date.now());
    const other = (id: string) => ({ id, session: new ReportSession(), deliver: async (m: ReportMessage) => (await intake.apply(id, m, (r) => blocks.has(r.id))).ack });
    const [two, three] = [other('ds-2'), other('ds-3')];
    const [ask1] = session.next(current());
    session.answered(ask1!, await deliver(ask1!));
    expect(session.sendsFull).toBe(true); // ds-1 has the only turn
    const [ask2] = two.session.next([report(1)]);
    expect(await two.deliver(ask2!)).toMatchObject({ full: true, wait: true });
    const [ask3] = three.session.next([report(2)]);
    expect(await three.deliver(ask3!)).toMatchObject({ full: true, wait: true });
    // A full report sent out of turn is turned away unapplied.
    const rogue = new ReportSession({ pageBlocks: 1 });
    const [rogueAsk] = rogue.next([report(3)]);
    rogue.answered(rogueAsk!, { session: rogueAsk!.session, ack: 0, full: true }); // as if given a turn elsewhere
    const [roguePage] = rogue.next([report(3)]);
    expect(await three.deliver(roguePage!)).toMatchObject({ full: true, wait: true });
    expect(registry.get('ds-3')!.reports.size).toBe(0);
    // ds-1 finishes: ds-2, which asked first, gets the turn; ds-3 still waits.
    for (const m of session.next(current())) session.answered(m, await deliver(m));
    expect(session.wantsFull).toBe(false);
    const [again3] = three.session.next([report(2)]);
    expect(await three.deliver(again3!)).toMatchObject({ full: true, wait: true });
    const [again2] = two.session.next([report(1)]);
    const ack2 = await two.deliver(again2!);
    expect(ack2.wait).toBeUndefined();
    two.session.answered(again2!, ack2);
    for (const m of two.session.next([report(1)])) two.session.answered(m, await two.deliver(m));
    const [last3] = three.session.next([report(2)]);
    expect((await three.deliver(last3!)).wait).toBeUndefined();
    expect(intake.reportedWhole('ds-1')).toBe(true);
    expect(intake.reportedWhole('ds-2')).toBe(true);
    expect(intake.reportedWhole('ds-3')).toBe(false);
  });

  it("a data server's ledger over its real store: the name server's picture follows every change", async () => {
    const t = tempDir();
    const store = await BlockStore.open({ dir: t.dir, blockSize: 1 << 20, fsync: false });
    try {
      for (const id of [1, 2, 3]) await store.createBlock(id);
      const ledger = new ReportLedger();
      /** One beat as the heartbeat makes it: the ledger brought up to date, then the session's messages. */
      const beatStore = async () => {
        ledger.refresh(store.blocks);
        for (let round = 0; round < 2; round++) {
          let complete = true;
          for (const m of session.next(ledger)) {
            if (!session.answered(m, await deliver(m))) {
              complete = false;
              break;
            }
          }
          if (complete || !session.sendsFull) break;
        }
        expect(seen()).toEqual(store.reports({ completeOnly: true }));
      };
      await beatStore();
      expect(fulls).toEqual(['unknown-session']);
      await store.put(2, { key: 1n, cookie: 1, uploadTime: 1, mime: 'image/jpeg', owner: '' }, Buffer.alloc(500, 1));
      await beatStore();
      expect(registry.get(DS)!.reports.get(2)!.liveCount).toBe(1);
      await store.setReadonly(1, true);
      await beatStore();
      await store.deleteBlock(3);
      await store.createBlock(11);
      await beatStore();
      expect(seen().map((r) => r.id)).toEqual([1, 2, 11]);
      await beatStore(); // quiet
      expect(fulls).toEqual(['unknown-session']); // no digest ever disagreed
    } finally {
      await store.close();
      t.cleanup();
    }
  });

  it('under-replication follows the reports, without a scan', async () => {
    await register();
    expect(blocks.underReplicatedCount()).toBe(2); // 11 and 12 are allocated, reported by no one
    held.delete(3);
    await beatOk();
    expect([...blocks.underReplicatedIds()].sort((a, b) => a - b)).toEqual([3, 11, 12]);
    held.set(3, report(3));
    held.set(11, report(11));
    await beatOk();
    expect([...blocks.underReplicatedIds()]).toEqual([12]);
  });
});
