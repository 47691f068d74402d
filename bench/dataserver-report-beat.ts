// What a heartbeat's block report costs a data server holding many blocks, per beat and per
// name server, in steady state: a session whose full report was acknowledged, and 0-2 blocks
// changed between beats (a write, a seal, a read-only flip, a compaction, a block created or
// removed). Times the parts heartbeat.ts runs for each name server on each beat: the report
// ledger's refresh (report-ledger.ts) and the report session's next message and its answer,
// and the store's gauges. Beside it, on the same history, the session fed the whole list of
// reports (store.reports(), a hash per block), as heartbeats were made before the ledger.
// The store is a real BlockStore (LevelDB in a temporary directory) whose block map is filled
// with in-memory blocks: a report reads only a block's state, never its file.
//   node bin/run-ts.mjs bench/dataserver-report-beat.ts [--quick] [--blocks 200000] [--beats 60]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Block, BlockFile } from '../dataserver/block.ts';
import { BlockStore } from '../dataserver/block-store.ts';
import { META_READONLY, META_SEALED, metaWith, type BlockMeta } from '../dataserver/needle-index.ts';
import { ReportLedger } from '../dataserver/report-ledger.ts';
import { ReportSession, type HeldReports } from '../dataserver/report-session.ts';
import type { BlockReport, ReportMessage } from '../src/wire/protocol.ts';
import { opt } from '../src/base/config.ts';
import { parseFlags } from './lib/flags.ts';

const flags = parseFlags(import.meta.url, {
  quick: opt.bool(false, 'fewer beats, for a smoke check'),
  blocks: opt.int(200_000, 'blocks the data server holds', { min: 1 }),
  beats: opt.int(60, 'steady-state beats timed', { min: 1 }),
}, { quick: { beats: 15 } });
const out = (o: Record<string, unknown>) => process.stdout.write(JSON.stringify(o) + '\n');

/** A seeded generator, so runs compare. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.9)]!;

const dir = mkdtempSync(join(tmpdir(), 'ugcfs-report-beat-'));
const store = await BlockStore.open({ dir, fsync: false, blockSize: 256 * 1024 * 1024 });
const fakeFile = (id: number) => new BlockFile(0, join(dir, `${id}.0.blk`), undefined as never);
const meta = (i: number): BlockMeta => metaWith({ flags: i % 3 === 0 ? META_SEALED : 0, gen: i % 5, end: 1_000_000 + i * 37, liveCount: 100 + (i % 900), liveBytes: 900_000 + i, deletedBytes: i % 7 === 0 ? 4096 : 0 });
const add = (id: number) => store.blocks.set(id, new Block(id, dir, fakeFile(id), meta(id)));
for (let id = 1; id <= flags.blocks; id++) add(id);
let nextId = flags.blocks + 1;

const rand = rng(17);
/** What happens on the server between two beats: 0-2 changes, of the kinds that change a report. */
function churn(): void {
  const n = Math.floor(rand() * 3);
  for (let i = 0; i < n; i++) {
    const ids = nextId - 1;
    const b = store.blocks.get(1 + Math.floor(rand() * ids));
    const x = rand();
    if (x < 0.05) add(nextId++);
    else if (!b) continue;
    else if (x < 0.1) store.blocks.delete(b.id);
    else if (x < 0.15) b.meta = metaWith(b.meta, { flags: b.meta.flags ^ META_READONLY });
    else if (x < 0.2) b.meta = metaWith(b.meta, { flags: b.meta.flags | META_SEALED });
    else if (x < 0.25) b.meta = metaWith(b.meta, { gen: b.meta.gen + 1, end: b.meta.liveBytes, deletedBytes: 0 });
    else b.meta = metaWith(b.meta, { end: b.meta.end + 20_000, liveCount: b.meta.liveCount + 1, liveBytes: b.meta.liveBytes + 20_000 });
  }
}

const ok = (m: ReportMessage) => ({ session: m.session, ack: m.seq });
/** A session whose full report was acknowledged: asked, given the turn, sent, acknowledged. */
function registered(held: () => readonly BlockReport[] | HeldReports): ReportSession {
  const session = new ReportSession();
  const [ask] = session.next(held());
  session.answered(ask!, { session: ask!.session, ack: 0, full: true });
  for (const m of session.next(held())) session.answered(m, ok(m));
  if (session.wantsFull) throw new Error('the full report was not taken');
  return session;
}
/** One beat's delta, answered; throws when the session left the steady state. */
function delta(session: ReportSession, held: readonly BlockReport[] | HeldReports): ReportMessage {
  const [d] = session.next(held);
  session.answered(d!, ok(d!));
  if (d!.kind !== 'delta' || d!.session === '-') throw new Error('steady state left: a full report was asked for');
  return d!;
}
const timed = <T>(f: () => T): [T, number] => {
  const t0 = process.hrtime.bigint();
  const r = f();
  return [r, ms(t0)];
};

const ledger = new ReportLedger();
ledger.refresh(store.blocks);
const session = registered(() => ledger);
const listSession = registered(() => store.reports({ completeOnly: true }));

const parts = { refresh: [] as number[], next: [] as number[], total: [] as number[], gauges: [] as number[], listReports: [] as number[], listNext: [] as number[], listTotal: [] as number[] };
let named = 0;
for (let beat = -5; beat < flags.beats; beat++) {
  churn();
  const [, gauges] = timed(() => {
    store.updateGauges();
    store.usedBytes();
  });
  const [, refresh] = timed(() => ledger.refresh(store.blocks));
  const [d, next] = timed(() => delta(session, ledger));
  const [blocks, listReports] = timed(() => store.reports({ completeOnly: true }));
  const [l, listNext] = timed(() => delta(listSession, blocks));
  // The same history, the same messages: the ledger's delta is the whole list's.
  if (d.digest !== l.digest || d.count !== l.count || d.blocks.length !== l.blocks.length || (d.removed?.length ?? 0) !== (l.removed?.length ?? 0)) {
    throw new Error(`beat ${beat}: the ledger's delta differs from the whole list's`);
  }
  if (beat < 0) continue; // warm-up
  named += d.blocks.length + (d.removed?.length ?? 0);
  Object.entries({ refresh, next, total: refresh + next, gauges, listReports, listNext, listTotal: listReports + listNext }).forEach(([k, v]) => parts[k as keyof typeof parts].push(v));
}
store.blocks.clear(); // the in-memory blocks have no files or writers to close
await store.close();
rmSync(dir, { recursive: true, force: true });

const detail = { blocks: flags.blocks, beats: flags.beats, blocksPerDelta: +(named / flags.beats).toFixed(2) };
const fig = (xs: number[]) => +median(xs).toFixed(3);
out({ metric: 'block report per beat per name server', value: fig(parts.total), unit: 'ms', p90ms: +p90(parts.total).toFixed(3), refreshMs: fig(parts.refresh), nextMs: fig(parts.next), ...detail });
out({ metric: 'block report per beat per name server, whole list', value: fig(parts.listTotal), unit: 'ms', p90ms: +p90(parts.listTotal).toFixed(3), reportsMs: fig(parts.listReports), nextMs: fig(parts.listNext), ...detail });
out({ metric: 'gauges and used bytes per beat', value: fig(parts.gauges), unit: 'ms', ...detail });
