// The name-server scale bench's simulated data servers build their deltas from what changed
// (bench/lib/ns-scale-session.ts) instead of a pass over every block per beat, as the real
// session does (dataserver/report-session.ts). Here both run side by side on the same
// server's history (blocks changed, removed, created; answers acknowledged, lost, refused
// with a request for a full report, acknowledging only part) and must send the same messages.
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

function run(seed: number, beats: number) {
  const rand = rng(seed);
  const layout: Layout = { blocks: 300, servers: 4 };
  const server = new SimServer(1, 'http://127.0.0.1:1/ds/2', { pageBlocks: 40, newSessionId: ids('s') });
  const real = new ReportSession({ pageBlocks: 40, newSessionId: ids('s') });
  server.load(layout, serverBlocks(layout)[1]!);
  let nextNew = layout.blocks + 1;
  let deltas = 0;
  let fulls = 0;
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
    const mine = server.session.next();
    const theirs = real.next(server.current());
    expect(mine.map(normal)).toEqual(theirs.map(normal));
    expect(mine[0]!.digest).toBe(digestOf(server.current()));
    for (const m of mine) {
      if (m.kind === 'full') fulls++;
      else deltas++;
      const y = rand();
      if (y < 0.08) {
        // the reply was lost
        server.session.unanswered(m);
        real.unanswered(m);
        break;
      }
      let ack: ReportAck | undefined = { session: m.session, ack: m.seq };
      if (y < 0.12) ack = { session: m.session, ack: m.seq, full: true };
      else if (y < 0.2 && m.kind === 'delta') ack = { session: m.session, ack: m.seq - 1 };
      else if (y < 0.22) ack = undefined;
      const a = server.session.answered(m, ack);
      const b = real.answered(m, ack);
      expect(a).toBe(b);
      if (!a) break;
    }
    expect(server.session.wantsFull).toBe(real.wantsFull);
  }
  return { deltas, fulls };
}

describe('simulated report session', () => {
  it('sends what ReportSession sends, over many random histories', () => {
    let deltas = 0;
    let fulls = 0;
    for (let seed = 1; seed <= 40; seed++) {
      const r = run(seed, 120);
      deltas += r.deltas;
      fulls += r.fulls;
    }
    // both paths were exercised a fair number of times
    expect(deltas).toBeGreaterThan(2000);
    expect(fulls).toBeGreaterThan(100);
  });
});
