// The migrate state: what makes a killed run resumable without storing anything twice, in
// memory that does not grow with the number of files (state format 2, docs/MIGRATION.md).
//
// - "done" entries (path -> fid, checksum, the old origin's validators) live in LevelDB
//   beside the journal, looked up one path at a time.
// - "stored" intents go to an append-only JSON-lines journal with a synchronous write as soon
//   as a write has its fid and before any byte is sent (the data servers finish a write even
//   if migrate dies mid-way, and the cluster client announces the fid through a synchronous
//   callback, which an asynchronous LevelDB put could not honour). Only intents not yet
//   covered by a done entry are live, so memory holds about `concurrency` of them; the file is
//   rewritten with just those every ROTATE_LINES appends.
//
// Neither is fsynced per entry: a SIGKILL loses nothing already written (the page cache
// outlives the process), and a torn last journal line is ignored. A JSON-lines state file of
// format 1 (done and stored lines, no LevelDB) is converted on open, streaming.
import { closeSync, createReadStream, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { Level } from 'level';
import { UgcfsError } from '../../src/base/errors.ts';

export interface DoneEntry {
  t: 'done';
  p: string;
  fid: string;
  sha: string;
  size: number;
  etag?: string;
  lm?: string;
}

export interface StoredEntry {
  t: 'stored';
  p: string;
  fid: string;
  sha: string;
}

interface VersionEntry {
  t: 'version';
  v: number;
}

type Entry = DoneEntry | StoredEntry | VersionEntry;

export const STATE_FILE_PREFIX = '.ugcfs-migrate-state';
/** On-disk state format: 1 = JSON lines only; 2 = JSON-lines journal of intents + LevelDB of done entries. */
export const STATE_VERSION = 2;
/** journal appends between rewrites down to the live intents */
const ROTATE_LINES = 4096;
/** converted done entries per LevelDB batch */
const BATCH = 2000;

/** The state file for one migration source: one per (source, prefix, name server), so two migrations never share it. */
export function stateFileName(dir: string, identity: readonly string[]): string {
  const h = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 12);
  return join(dir, `${STATE_FILE_PREFIX}-${h}.jsonl`);
}

/** The LevelDB directory that goes with a journal. */
export function stateDbName(file: string): string {
  return file.replace(/\.jsonl$/, '') + '.db';
}

type Db = Level<string, string>;
const doneOf = (db: Db) => db.sublevel<string, DoneEntry>('done', { valueEncoding: 'json' });
type DoneDb = ReturnType<typeof doneOf>;

export class MigrateState {
  // path -> sha -> fid of bytes stored but not yet covered by a done entry
  private readonly intents = new Map<string, Map<string, string>>();
  private fd: number | undefined;
  private appended = 0;

  private constructor(
    readonly file: string | undefined,
    private readonly db: Db | undefined,
    private readonly done: DoneDb | undefined,
  ) {}

  /** Opens (creating) the state, converting a format-1 file, and compacts the journal. */
  static async open(file: string): Promise<MigrateState> {
    mkdirSync(dirname(file), { recursive: true });
    const db: Db = new Level<string, string>(stateDbName(file));
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') throw new UgcfsError('UGCFS_ERR_CONFLICT', `another ugcfs migrate is using the state ${stateDbName(file)}`);
      throw err;
    }
    const meta = db.sublevel<string, string>('meta', {});
    const done = doneOf(db);
    const s = new MigrateState(file, db, done);
    try {
      const v = Number((await meta.get('version')) ?? STATE_VERSION);
      if (v > STATE_VERSION) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${stateDbName(file)} has state format ${v}; this ugcfs reads up to ${STATE_VERSION}`);
      await meta.put('version', String(STATE_VERSION));
      await s.load();
    } catch (err) {
      await db.close();
      throw err;
    }
    return s;
  }

  /** A state that writes nothing (dry runs). */
  static none(): MigrateState {
    return new MigrateState(undefined, undefined, undefined);
  }

  async get(path: string): Promise<DoneEntry | undefined> {
    return (await this.done?.get(path)) ?? undefined;
  }

  /** A fid already holding exactly these bytes for this path, from an interrupted run; `done` is get(path). */
  storedFid(path: string, sha: string, done: DoneEntry | undefined): string | undefined {
    return this.intents.get(path)?.get(sha) ?? (done?.sha === sha ? done.fid : undefined);
  }

  /** Synchronous on purpose: called back by the cluster client before the bytes leave. */
  recordStored(path: string, fid: string, sha: string): void {
    this.addIntent(path, sha, fid);
    if (this.fd === undefined) return;
    writeSync(this.fd, JSON.stringify({ t: 'stored', p: path, fid, sha } satisfies StoredEntry) + '\n');
    if (++this.appended >= ROTATE_LINES) this.rewriteJournal();
  }

  async recordDone(e: Omit<DoneEntry, 't'>): Promise<void> {
    const entry: DoneEntry = { t: 'done', ...e };
    await this.done?.put(e.p, entry);
    // Only once the done entry is written may the intent be forgotten.
    this.dropIntent(e.p, e.sha);
  }

  /** how many stored intents are live (tests) */
  get liveIntents(): number {
    let n = 0;
    for (const m of this.intents.values()) n += m.size;
    return n;
  }

  async close(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    await this.db?.close();
  }

  private addIntent(path: string, sha: string, fid: string): void {
    let m = this.intents.get(path);
    if (!m) this.intents.set(path, (m = new Map()));
    m.set(sha, fid);
  }

  private dropIntent(path: string, sha: string): void {
    const m = this.intents.get(path);
    m?.delete(sha);
    if (m && m.size === 0) this.intents.delete(path);
  }

  /**
   * Streams the journal: stored lines become intents, done lines (format 1, or written by an
   * older ugcfs since) go into LevelDB in batches and cancel the intent they cover. Memory
   * holds the intents live at each point of the file, not its lines.
   */
  private async load(): Promise<void> {
    const file = this.file!;
    let batch = this.done!.batch();
    let pending = 0;
    let newer: number | undefined;
    try {
      const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
      for await (const line of lines) {
        if (line === '') continue;
        let e: Entry;
        try {
          e = JSON.parse(line) as Entry;
        } catch {
          continue;
        }
        if (typeof e !== 'object' || e === null) continue;
        if (e.t === 'version') {
          if (typeof e.v === 'number' && e.v > STATE_VERSION) newer = e.v;
          continue;
        }
        if (typeof e.p !== 'string' || typeof e.fid !== 'string' || typeof e.sha !== 'string') continue;
        if (e.t === 'stored') this.addIntent(e.p, e.sha, e.fid);
        else if (e.t === 'done') {
          batch.put(e.p, e);
          this.dropIntent(e.p, e.sha);
          if (++pending >= BATCH) {
            await batch.write();
            batch = this.done!.batch();
            pending = 0;
          }
        }
      }
    } catch (err) {
      await batch.close();
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      batch = this.done!.batch();
      pending = 0;
    }
    if (newer !== undefined) {
      await batch.close();
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${file} has state format ${newer}; this ugcfs reads up to ${STATE_VERSION}`);
    }
    // Synced, because the journal rewrite below drops the done lines just converted.
    if (pending) await batch.write({ sync: true });
    else await batch.close();
    for (const [p, m] of [...this.intents]) {
      const d = await this.done!.get(p);
      for (const [sha, fid] of [...m]) if (d && d.sha === sha && d.fid === fid) this.dropIntent(p, sha);
    }
    this.rewriteJournal();
  }

  /** Rewrites the journal with the live intents only, swapped in by rename so a kill keeps the old one. */
  private rewriteJournal(): void {
    const file = this.file!;
    if (this.fd !== undefined) closeSync(this.fd);
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w');
    const lines = [JSON.stringify({ t: 'version', v: STATE_VERSION } satisfies VersionEntry)];
    for (const [p, m] of this.intents) for (const [sha, fid] of m) lines.push(JSON.stringify({ t: 'stored', p, fid, sha } satisfies StoredEntry));
    writeSync(fd, lines.join('\n') + '\n');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
    this.fd = openSync(file, 'a');
    this.appended = 0;
  }
}
