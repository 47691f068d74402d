// The rules verify --repair settles differing copies by (docs/OPERATIONS.md): deletes win,
// else the union of live records; anything else is a conflict left alone. Pure planning, no
// processes: the end-to-end cases are test/faults/partial-delete and orphan-write.
import { describe, expect, it } from 'vitest';
import { describeFix, planKeyFixes } from '../../nameserver/ops-key-reconcile.ts';
import type { DataserverEntry } from '../../nameserver/registry.ts';
import type { BlockKeyState } from '../../src/wire/protocol.ts';

const ds = (id: string) => ({ id, url: `http://${id}` }) as unknown as DataserverEntry;
const liveKey = (key: number, crc = key * 10): BlockKeyState => ({ key: String(key), cookie: key, deleted: false, crc, size: 100 + key });
const deadKey = (key: number): BlockKeyState => ({ key: String(key), cookie: key, deleted: true, crc: 0, size: 0 });
const [a, b, c] = [ds('a'), ds('b'), ds('c')];

const summary = (plan: ReturnType<typeof planKeyFixes>) =>
  Object.fromEntries(plan.fixes.map((f) => [f.ds.id, { del: f.deletes.map((k) => k.key), copy: f.copies.map((x) => `${x.state.key}<-${x.from.id}`) }]));

describe('planning key fixes', () => {
  it('copies that agree need nothing', () => {
    const plan = planKeyFixes([{ ds: a, keys: [liveKey(1), deadKey(2)] }, { ds: b, keys: [liveKey(1), deadKey(2)] }]);
    expect(plan).toEqual({ fixes: [], conflicts: [] });
  });

  it('a tombstone on any copy wins over live copies; absent-or-deleted everywhere needs nothing', () => {
    const plan = planKeyFixes([
      { ds: a, keys: [deadKey(1), liveKey(2)] },
      { ds: b, keys: [liveKey(1), deadKey(3)] },
      { ds: c, keys: [liveKey(1), liveKey(2)] },
    ]);
    // key 2 is live on a and c, absent (never deleted) on b: copied to b
    expect(summary(plan)).toEqual({ b: { del: ['1'], copy: ['2<-a'] }, c: { del: ['1'], copy: [] } });
    expect(plan.conflicts).toEqual([]);
  });

  it('a live record missing from a copy is copied to it, and only to it', () => {
    const plan = planKeyFixes([{ ds: a, keys: [liveKey(5), liveKey(6)] }, { ds: b, keys: [liveKey(5)] }]);
    expect(summary(plan)).toEqual({ b: { del: [], copy: ['6<-a'] } });
    expect(describeFix(plan.fixes[0]!)).toBe('keys-differ (missing here, live on a: key 6)');
  });

  it('different bytes under one key, or an unreadable record, are conflicts and change nothing', () => {
    const differ = planKeyFixes([{ ds: a, keys: [liveKey(1, 111)] }, { ds: b, keys: [liveKey(1, 222)] }, { ds: c, keys: [] }]);
    expect(differ.conflicts).toEqual(['key 1: copies hold different bytes']);
    expect(differ.fixes).toEqual([]);
    const unreadable = planKeyFixes([{ ds: a, keys: [{ ...liveKey(1), size: -1 }] }, { ds: b, keys: [deadKey(1)] }]);
    expect(unreadable.conflicts).toHaveLength(1);
    expect(unreadable.fixes).toEqual([]);
    const otherCookie = planKeyFixes([{ ds: a, keys: [liveKey(1)] }, { ds: b, keys: [{ ...deadKey(1), cookie: 9 }] }]);
    expect(otherCookie.conflicts).toHaveLength(1);
  });

  it('the report names at most ten keys per kind', () => {
    const keys = Array.from({ length: 14 }, (_, i) => liveKey(i + 1));
    const plan = planKeyFixes([{ ds: a, keys }, { ds: b, keys: keys.map((k) => deadKey(Number(k.key))) }]);
    expect(describeFix(plan.fixes[0]!)).toBe('keys-differ (live here but deleted on another copy: key 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 4 more)');
  });
});
