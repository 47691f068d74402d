// The migrate state file: an append-only JSON-lines journal that makes a killed run
// resumable without storing anything twice. "stored" is appended as soon as a write has its
// fid and before any byte is sent (the data servers finish a write even if migrate dies
// mid-way), so a rerun checks that fid and reuses the copy instead of writing the bytes
// again; "done" is appended once the mapping is recorded and verified,
// and keeps the old origin's validators for conditional re-fetches. Appends are synchronous
// single writes: a SIGKILL loses nothing already appended (the page cache outlives the
// process), and a torn last line is ignored on load. docs/MIGRATION.md describes the format.
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';

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

type Entry = DoneEntry | StoredEntry;

export const STATE_FILE_PREFIX = '.ugcfs-migrate-state';

/** The state file for one migration source: one per (source, prefix, name server), so two migrations never share it. */
export function stateFileName(dir: string, identity: readonly string[]): string {
  const h = createHash('sha256').update(JSON.stringify(identity)).digest('hex').slice(0, 12);
  return join(dir, `${STATE_FILE_PREFIX}-${h}.jsonl`);
}

export class MigrateState {
  private readonly done = new Map<string, DoneEntry>();
  // path -> sha -> fid of bytes stored but not yet (known to be) mapped
  private readonly stored = new Map<string, Map<string, string>>();
  private fd: number | undefined;

  private constructor(readonly file: string | undefined) {}

  /** Loads the journal (if any), compacts it to its live entries, and opens it for appending. */
  static open(file: string): MigrateState {
    const s = new MigrateState(file);
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let e: Entry;
      try {
        e = JSON.parse(line) as Entry;
      } catch {
        continue;
      }
      s.apply(e);
    }
    mkdirSync(dirname(file), { recursive: true });
    // Rewrite compacted, then swap in by rename, so a kill during compaction keeps the old file.
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w');
    const live: Entry[] = [...s.done.values(), ...[...s.stored].flatMap(([p, m]) => [...m].map(([sha, fid]): StoredEntry => ({ t: 'stored', p, fid, sha })))];
    if (live.length) writeSync(fd, live.map((e) => JSON.stringify(e)).join('\n') + '\n');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
    s.fd = openSync(file, 'a');
    return s;
  }

  /** A state that remembers nothing and writes nothing (dry runs). */
  static none(): MigrateState {
    return new MigrateState(undefined);
  }

  get(path: string): DoneEntry | undefined {
    return this.done.get(path);
  }

  /** A fid already holding exactly these bytes for this path, from an interrupted run. */
  storedFid(path: string, sha: string): string | undefined {
    return this.stored.get(path)?.get(sha) ?? (this.done.get(path)?.sha === sha ? this.done.get(path)!.fid : undefined);
  }

  recordStored(path: string, fid: string, sha: string): void {
    this.append({ t: 'stored', p: path, fid, sha });
  }

  recordDone(e: Omit<DoneEntry, 't'>): void {
    this.append({ t: 'done', ...e });
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  private apply(e: Entry): void {
    if (typeof e !== 'object' || e === null || typeof e.p !== 'string' || typeof e.fid !== 'string' || typeof e.sha !== 'string') return;
    if (e.t === 'stored') {
      let m = this.stored.get(e.p);
      if (!m) this.stored.set(e.p, (m = new Map()));
      m.set(e.sha, e.fid);
    } else if (e.t === 'done') {
      this.done.set(e.p, e);
      // Once mapped, the stored entry for those bytes has served its purpose.
      const m = this.stored.get(e.p);
      m?.delete(e.sha);
      if (m && m.size === 0) this.stored.delete(e.p);
    }
  }

  private append(e: Entry): void {
    this.apply(e);
    if (this.fd === undefined) return;
    appendFileSync(this.fd, JSON.stringify(e) + '\n');
  }
}
