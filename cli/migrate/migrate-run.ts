// The migration pipeline, the same for a directory tree and a list of old URLs: load the
// bytes, prepare them (images exactly as an upload would be, every other file as it is), skip what the table already holds,
// store (or reuse what an interrupted run stored), read back and compare, then record the
// mapping. One file's failure is recorded and the run goes on.
import { createHash } from 'node:crypto';
import { isUgcfsError, UgcfsError } from '../../src/base/errors.ts';
import type { LegacyMapping, LegacyPut } from '../../src/wire/protocol.ts';
import type { MigrateState } from './migrate-state.ts';
import { ProblemList } from './problem-list.ts';

/** What migrate needs from the cluster (an adapter over ClusterClient). */
export interface MigrateStore {
  /** stores the bytes; `onAssigned` hears the fid before any byte is sent, so it can be journaled */
  write(data: Buffer, mime: string, onAssigned: (fid: string) => void): Promise<string>;
  read(fid: string): Promise<Buffer>;
  /** every replica of the file's block holds it (a write interrupted halfway may have left fewer) */
  complete(fid: string): Promise<boolean>;
  remove(fid: string): Promise<void>;
  legacyGet(path: string): Promise<LegacyMapping | undefined>;
  legacySet(m: LegacyPut): Promise<LegacyMapping>;
}

export type LoadResult = { status: 'ok'; data: Buffer; etag?: string; lastModified?: string } | { status: 'not-modified' };

export interface MigrateItem {
  /** canonical legacy path, the table key */
  path: string;
  /** what the report calls it (relative file name or URL path) */
  label: string;
  /** throws a UgcfsError whose message is the failure reason */
  load(validators: { etag?: string; lastModified?: string } | undefined): Promise<LoadResult>;
}

/** Refused before walking the pipeline (symlinks out of the tree, special files, bad names). */
export interface PreOutcome {
  label: string;
  outcome: 'skipped' | 'failed';
  reason: string;
}

/** What a source yields, one at a time, in its order. */
export type SourceEntry = MigrateItem | PreOutcome;

export type Prepared = { data: Buffer; mime: string } | { skip: string };

export interface MigrateDeps {
  store: MigrateStore;
  state: MigrateState;
  /** the origin's check of an old server's file (images cleaned like uploads, other files as they are), given the canonical path; `skip` for what cannot be stored */
  prepare(data: Buffer, path: string): Promise<Prepared>;
  dryRun: boolean;
  concurrency: number;
  /** the source's count so far, and whether it is complete (counted alongside the run) */
  expected?(): { total: number; final: boolean };
  onProgress?(p: Progress): void;
}

export type Outcome = 'copied' | 'updated' | 'unchanged' | 'skipped' | 'failed';

export interface Progress {
  /** the expected total; while `totalFinal` is false, only what has been counted so far */
  total: number;
  totalFinal: boolean;
  done: number;
  counts: Record<Outcome, number>;
  bytes: number;
  last?: { label: string; outcome: Outcome; reason?: string };
}

export interface MigrateReport {
  dryRun: boolean;
  total: number;
  /** newly mapped paths (in a dry run: would be) */
  copied: number;
  /** remapped because the bytes changed (counted in copied too) */
  updated: number;
  /** unchanged plus refused/unsupported */
  skipped: number;
  unchanged: number;
  failed: number;
  bytes: number;
  seconds: number;
  filesPerSec: number;
  mbPerSec: number;
  /** spilled to disk; the JSON report lists them as arrays of {path, reason} */
  skips: ProblemList;
  failures: ProblemList;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export function reasonOf(err: unknown): string {
  if (isUgcfsError(err)) return `${err.message} (${err.code})`;
  return (err as Error)?.message ?? String(err);
}

/**
 * Runs the pipeline over a source pulled one entry at a time by `concurrency` workers, so
 * memory holds what is in flight, not the source; the report's lists of skips and failures
 * go to disk. The caller closes those lists once the report is written.
 */
export async function runMigration(entries: AsyncIterable<SourceEntry>, deps: MigrateDeps): Promise<MigrateReport> {
  const started = process.hrtime.bigint();
  const counts: Record<Outcome, number> = { copied: 0, updated: 0, unchanged: 0, skipped: 0, failed: 0 };
  const skips = new ProblemList();
  const failures = new ProblemList();
  let done = 0;
  let bytes = 0;
  let sourceDone = false;
  const note = (label: string, outcome: Outcome, reason?: string) => {
    counts[outcome]++;
    done++;
    if (outcome === 'skipped') skips.add({ path: label, reason: reason ?? '' });
    if (outcome === 'failed') failures.add({ path: label, reason: reason ?? '' });
    if (!deps.onProgress) return;
    const exp = deps.expected?.() ?? { total: done, final: false };
    // The count is an estimate until the source itself has ended; then `done` is the truth.
    const final = sourceDone && inFlight === 0;
    const total = final ? done : Math.max(exp.total, done);
    deps.onProgress({ total, totalFinal: final || (exp.final && exp.total >= done), done, counts: { ...counts }, bytes, last: { label, outcome, ...(reason ? { reason } : {}) } });
  };

  const it = entries[Symbol.asyncIterator]();
  let inFlight = 0;
  const worker = async () => {
    for (;;) {
      // Async generators queue concurrent next() calls, so workers can share one.
      const r = await it.next();
      if (r.done) {
        sourceDone = true;
        return;
      }
      const e = r.value;
      if ('outcome' in e) {
        note(e.label, e.outcome, e.reason);
        continue;
      }
      inFlight++;
      let result: { outcome: Outcome; reason?: string; bytes: number };
      try {
        result = await migrateOne(e, deps);
      } catch (err) {
        result = { outcome: 'failed', reason: reasonOf(err), bytes: 0 };
      }
      inFlight--;
      if (result.outcome === 'copied' || result.outcome === 'updated') bytes += result.bytes;
      note(e.label, result.outcome, result.reason);
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, deps.concurrency) }, worker));
  } catch (err) {
    skips.close();
    failures.close();
    throw err;
  }
  const total = done;

  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    dryRun: deps.dryRun,
    total,
    copied: counts.copied + counts.updated,
    updated: counts.updated,
    skipped: counts.skipped + counts.unchanged,
    unchanged: counts.unchanged,
    failed: counts.failed,
    bytes,
    seconds: round(seconds, 3),
    filesPerSec: round((counts.copied + counts.updated) / Math.max(seconds, 1e-9), 1),
    mbPerSec: round(bytes / 1e6 / Math.max(seconds, 1e-9), 2),
    skips,
    failures,
  };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

async function migrateOne(item: MigrateItem, deps: MigrateDeps): Promise<{ outcome: Outcome; reason?: string; bytes: number }> {
  const { store, state } = deps;
  const [existing, journal] = await Promise.all([store.legacyGet(item.path), state.get(item.path)]);
  // Conditional re-fetch only when the table still holds what this journal recorded.
  const validators = journal && existing?.fid === journal.fid && (journal.etag || journal.lm) ? { ...(journal.etag ? { etag: journal.etag } : {}), ...(journal.lm ? { lastModified: journal.lm } : {}) } : undefined;
  const loaded = await item.load(validators);
  if (loaded.status === 'not-modified') return { outcome: 'unchanged', bytes: 0 };

  const prepared = await deps.prepare(loaded.data, item.path);
  if ('skip' in prepared) return { outcome: 'skipped', reason: prepared.skip, bytes: 0 };
  const { data, mime } = prepared;
  const sha = sha256(data);
  const keep = { ...(loaded.etag ? { etag: loaded.etag } : {}), ...(loaded.lastModified ? { lm: loaded.lastModified } : {}) };

  if (existing && (await holdsSameBytes(store, existing, sha, journal?.fid === existing.fid))) {
    if (!deps.dryRun && (journal?.fid !== existing.fid || journal.sha !== sha || journal.etag !== keep.etag || journal.lm !== keep.lm)) {
      await state.recordDone({ p: item.path, fid: existing.fid, sha, size: data.length, ...keep });
    }
    return { outcome: 'unchanged', bytes: 0 };
  }
  const outcome: Outcome = existing ? 'updated' : 'copied';
  if (deps.dryRun) return { outcome, bytes: data.length };

  // A fid journaled by an interrupted run is reused only if the copy is whole on every replica.
  let fid = state.storedFid(item.path, sha, journal);
  if (fid !== undefined && !((await readsBack(store, fid, sha)) && (await store.complete(fid)))) {
    // Whatever part of it landed is garbage now; a file that never landed makes this a no-op.
    await store.remove(fid).catch(() => undefined);
    fid = undefined;
  }
  if (fid === undefined) {
    fid = await store.write(data, mime, (assigned) => state.recordStored(item.path, assigned, sha));
    if (!(await readsBack(store, fid, sha))) {
      await store.remove(fid).catch(() => undefined);
      throw new UgcfsError('UGCFS_ERR_CHECKSUM', 'read-back after upload did not match the source bytes; the copy was removed');
    }
  }
  await store.legacySet({ path: item.path, fid, sha256: sha, size: data.length });
  await state.recordDone({ p: item.path, fid, sha, size: data.length, ...keep });
  return { outcome, bytes: data.length };
}

/**
 * The mapped file holds these bytes. A recorded checksum that differs settles it at once; a
 * matching one is trusted only when this state file verified that very fid, otherwise the
 * file is read back, so a mapping left dangling by a delete is repaired rather than kept.
 */
async function holdsSameBytes(store: MigrateStore, m: LegacyMapping, sha: string, verifiedHere: boolean): Promise<boolean> {
  if (m.sha256 !== undefined && m.sha256 !== sha) return false;
  if (m.sha256 !== undefined && verifiedHere) return true;
  return readsBack(store, m.fid, sha);
}

async function readsBack(store: MigrateStore, fid: string, sha: string): Promise<boolean> {
  try {
    return sha256(await store.read(fid)) === sha;
  } catch (err) {
    if (isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND') || isUgcfsError(err, 'UGCFS_ERR_BLOCK_NOT_FOUND')) return false;
    throw err;
  }
}
