// The name-server scale bench's simulated data servers build their deltas from what changed
// (bench/lib/ns-scale-session.ts) instead of a pass over every block per beat, as the real
// session does (dataserver/report-session.ts). Here both run side by side on the same
// server's history (blocks changed, removed, created; answers acknowledged, lost, refused
// with a request for a full report, acknowledging only part; asking for the turn to send a
// full report, told to wait or given it, and then sending it in the same beat) and must send
// the same messages.
import { describe, expect, it } from 'vitest';
import { ReportSession } from '../../dataserver/report-session.ts';
import { digestOf } from '../../src/wire/heartbeat.ts';
import type { BlockReport, ReportAck, ReportMessage } from '../../src/wire/protocol.ts';
import { churned, newBlockReport, serverBlocks, type Layout } from '../../bench/lib/ns-scale-layout.ts';
import { SimServer } from '../../bench/lib/ns-scale-server.ts';

/** A seeded generator, so a failure can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const byId = (a: BlockReport, b: BlockReport) => a.id - b.id;
/** A message with its blocks and removals in id order (the two sessions list them in different orders). */
function normal(m: ReportMessage): ReportMessage {
  return { ...m, blocks: [...m.blocks].sort(byId), ...(m.removed ? { removed: [...m.removed].sort((a, b) => a - b) } : {}) };
}

function ids(prefix: string) {
  let n = 0;
  return () => `${prefix}${++n}`;
}

/** An answer of the name server to `m`, picked at random among those it may give. */
function answer(m: ReportMessage, rand: () => number): ReportAck | undefined | 'lost' {
  const y = rand();
  if (y < 0.06) return 'lost';
  if (y < 0.08) return undefined; // no report ack (an older name server, a refusal)
  // asking for the turn: given, or wait (others have the turns)
  if (m.session === '-') return { session: m.session, ack: 0, full: true, ...(y < 0.5 ? { wait: true } : {}) };
  if (y < 0.11) return { session: m.session, ack: m.kind === 'full' ? 0 : m.seq - 1, full: true }; // a full report, the turn given
  if (y < 0.14) return { session: m.session, ack: m.kind === 'full' ? 0 : m.seq - 1, full: true, wait: true }; // a full report, later
  if (y < 0.2 && m.kind === 'delta') return { session: m.session, ack: m.seq - 1 }; // part acknowledged
  if (y < 0.22 && m.kind === 'full') return { session: m.session, ack: m.seq - 1 }; // a page not applied
  return { session: m.session, ack: m.seq };
}

function run(seed: number, beats: number) {
  const rand = rng(seed);
  const layout: Layout = { blocks: 300, servers: 4 };
  const server = new SimServer(1, 'http://127.0.0.1:1/ds/2', { pageBlocks: 40, newSessionId: ids('s') });
  const real = new ReportSession({ pageBlocks: 40, newSessionId: ids('s') });
  server.load(layout, serverBlocks(layout)[1]!);
  let nextNew = layout.blocks + 1;
  const seen = { deltas: 0, fulls: 0, asks: 0, waits: 0, grants: 0, sameBeat: 0 };
  for (let beat = 0; beat < beats; beat++) {
    // what happened on the server since the last beat
    const changes = Math.floor(rand() * 5);
    for (let i = 0; i < changes; i++) {
      const held = server.current();
      const pick = held[Math.floor(rand() * held.length)];
      const x = rand();
      if (x < 0.15) server.set(nextNew, newBlockReport(nextNew++));
      else if (!pick) continue;
      else if (x < 0.3) server.set(pick.id, undefined);
      else if (x < 0.4) server.set(pick.id, { ...pick, readonly: !pick.readonly });
      else if (x < 0.45) server.set(pick.id, { ...pick }); // touched, unchanged
      else server.set(pick.id, churned(pick));
    }
    // one beat as dataserver/heartbeat.ts sends it: a full report given the turn goes in the same beat (once)
    for (let round = 0; round < 2; round++) {
      expect(server.session.sendsFull).toBe(real.sendsFull);
      const wasFull = real.sendsFull;
      const mine = server.session.next();
      const theirs = real.next(server.current());
      expect(mine.map(normal)).toEqual(theirs.map(normal));
      expect(mine[0]!.digest).toBe(digestOf(server.current()));
      let complete = true;
      for (const m of mine) {
        expect(server.session.current(m)).toBe(true);
        if (m.session === '-') seen.asks++;
        else if (m.kind === 'full') seen.fulls++;
        else seen.deltas++;
        if (round > 0) seen.sameBeat++;
        const ack = answer(m, rand);
        if (ack === 'lost') {
          server.session.unanswered(m);
          real.unanswered(m);
          complete = false;
          break;
        }
        if (ack?.full) seen[ack.wait ? 'waits' : 'grants']++;
        const a = server.session.answered(m, ack);
        const b = real.answered(m, ack);
        expect(a).toBe(b);
        if (!a) {
          complete = false;
          break;
        }
      }
      expect(server.session.wantsFull).toBe(real.wantsFull);
      expect(server.session.sendsFull).toBe(real.sendsFull);
      if (complete || (wasFull && round > 0) || !real.sendsFull) break;
    }
  }
  return seen;
}

describe('simulated report session', () => {
  it('sends what ReportSession sends, over many random histories', () => {
    const total = { deltas: 0, fulls: 0, asks: 0, waits: 0, grants: 0, sameBeat: 0 };
    for (let seed = 1; seed <= 40; seed++) {
      const r = run(seed, 120);
      for (const k of Object.keys(total) as Array<keyof typeof total>) total[k] += r[k];
    }
    // every path was exercised a fair number of times: deltas, pages, asking, being told to
    // wait, being given the turn, and a full report sent in the beat that was given it
    expect(total.deltas).toBeGreaterThan(2000);
    expect(total.fulls).toBeGreaterThan(1000);
    expect(total.asks).toBeGreaterThan(800);
    expect(total.waits).toBeGreaterThan(400);
    expect(total.grants).toBeGreaterThan(400);
    expect(total.sameBeat).toBeGreaterThan(1000);
  });
});
