// The under-replicated set's news for repair (nameserver/under-replicated.ts, takeFresh).
import { describe, expect, it } from 'vitest';
import type { Registry } from '../../nameserver/registry.ts';
import { UnderReplicated } from '../../nameserver/under-replicated.ts';

describe('blocks newly under-replicated', () => {
  // Only refresh and the news are exercised: no server, so the registry is never asked.
  const make = (short: Set<number>) => new UnderReplicated({} as Registry, (id) => short.has(id), () => []);
  const drain = (u: UnderReplicated) => {
    const out: number[] = [];
    for (let id = u.takeFresh(); id !== undefined; id = u.takeFresh()) out.push(id);
    return out;
  };

  it('hands each block out once, oldest first, when it joins the set', () => {
    const short = new Set([3, 1, 2]);
    const u = make(short);
    for (const id of [3, 1, 2, 3, 1]) u.refresh(id, 0);
    expect(u.ids().size).toBe(3);
    expect(drain(u)).toEqual([3, 1, 2]);
    expect(u.takeFresh()).toBeUndefined();
    // still short, re-counted: not news
    u.refresh(1, 0);
    expect(u.takeFresh()).toBeUndefined();
    // healed, then short again: news again
    short.delete(1);
    u.refresh(1, 0);
    expect(u.ids().has(1)).toBe(false);
    short.add(1);
    u.refresh(1, 0);
    expect(drain(u)).toEqual([1]);
  });

  it('forgets the news on request, keeping the set', () => {
    const u = make(new Set([5, 6]));
    u.refresh(5, 0);
    u.refresh(6, 0);
    u.clearFresh();
    expect(u.takeFresh()).toBeUndefined();
    expect([...u.ids()]).toEqual([5, 6]);
  });

  it('keeps its order across many blocks taken a few at a time', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => i);
    const u = make(new Set(ids));
    for (const id of ids.slice(0, 6000)) u.refresh(id, 0);
    const first = [...Array(5000)].map(() => u.takeFresh());
    for (const id of ids.slice(6000)) u.refresh(id, 0);
    expect([...first, ...drain(u)]).toEqual(ids);
  });
});
