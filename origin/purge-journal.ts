// The pending edge purges on disk, so an origin that stops (SIGKILL, a crash, a deploy, a
// power cut) sends them when it starts again (docs/ORIGIN.md, "Edge purge"). A purge is
// journaled, and fdatasynced, before its delete is acknowledged; an edge's confirmation is
// appended without a sync (losing one only sends that purge again, which is harmless).
//
// File layout, version 1 — <cache-dir>/edge-purges-<worker>.journal, UTF-8, LF endings:
//
//   ugcfs-edge-purges 1                      header: magic and version, once
//   <crc> {"q":<id>,"fid":..,"t":..,"urls":[..],"keys":[..]}    a purge queued
//   <crc> {"d":<id>,"edge":"<edge label>"}   that edge confirmed it, or gave it up
//
// <crc> is 8 lowercase hex digits, the CRC32-C of the JSON after the space. In "q": <id> a
// positive integer unique in the file, "t" when the delete was acknowledged (ms since the
// epoch), "urls" the URLs this origin served the file by (also the webhook's "paths"),
// "keys" its purge keys (the fid, legacy keys). The edge label is the --purge-edges URL
// without credentials or query (src/clients/edge-client.ts, edgeLabel), `webhook` for the
// webhook. JSON escapes every control byte, so a record is exactly one line.
//
// Golden bytes (test/origin/edge-purge-journal.test.ts), a purge of fid 3,01637037d6 at
// t 1700000000000, confirmed by one edge:
//
//   ugcfs-edge-purges 1
//   30002add {"q":1,"fid":"3,01637037d6","t":1700000000000,"urls":["/3,01637037d6.jpg?w=64"],"keys":["3,01637037d6"]}
//   5372169a {"d":1,"edge":"http://127.0.0.1:6081"}
//
// Reading: a last line without its LF is a torn append (a power cut mid-write) and is
// ignored; a whole line whose CRC or JSON is wrong is skipped and counted; a purge older than
// MAX_AGE_MS is dropped. A header naming another version stops the origin (exit 2) rather
// than lose what a newer ugcfs wrote. On open, and whenever the file grows past twice what
// is still pending plus COMPACT_SLACK, it is rewritten with the pending purges only (a temp
// file written, fsynced and renamed over it), so a torn tail never has appends after it.
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { UgcfsError } from '../src/base/errors.ts';
import { syncDir, writeFileDurable } from '../src/base/durable-fs.ts';
import type { Logger } from '../src/base/log.ts';

export const PURGE_JOURNAL_VERSION = 1;
export const JOURNAL_HEADER = `ugcfs-edge-purges ${PURGE_JOURNAL_VERSION}\n`;
/** A purge pending this long is not carried across a restart: the edge has been rebuilt or flushed by then, or someone must purge by hand. */
export const MAX_AGE_MS = 7 * 24 * 3600_000;
/** Pending purges beyond this many bytes stay in memory only (logged): the journal's disk bound. */
export const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** bytes a file may hold beyond twice what is pending before it is compacted */
export const COMPACT_SLACK = 1024 * 1024;

export interface JournalJob {
  id: number;
  fid: string;
  /** when the delete was acknowledged (ms since the epoch) */
  since: number;
  urls: string[];
  keys: string[];
}

export type JournalRecord = { kind: 'queued'; job: JournalJob } | { kind: 'done'; id: number; edge: string };

const crcHex = (json: string) => crc32c(Buffer.from(json, 'utf8')).toString(16).padStart(8, '0');

export function encodeRecord(r: JournalRecord): string {
  const json = r.kind === 'queued' ? JSON.stringify({ q: r.job.id, fid: r.job.fid, t: r.job.since, urls: r.job.urls, keys: r.job.keys }) : JSON.stringify({ d: r.id, edge: r.edge });
  return `${crcHex(json)} ${json}\n`;
}

const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) > 0;

function decodeLine(line: string): JournalRecord | undefined {
  const m = /^([0-9a-f]{8}) (\{.*\})$/.exec(line);
  if (!m || crcHex(m[2]!) !== m[1]) return undefined;
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(m[2]!) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (isId(o.q) && typeof o.fid === 'string' && Number.isSafeInteger(o.t) && isStrings(o.urls) && isStrings(o.keys)) {
    return { kind: 'queued', job: { id: o.q, fid: o.fid, since: o.t as number, urls: o.urls, keys: o.keys } };
  }
  if (isId(o.d) && typeof o.edge === 'string') return { kind: 'done', id: o.d, edge: o.edge };
  return undefined;
}

export interface DecodedJournal {
  records: JournalRecord[];
  /** whole lines skipped: bad CRC or JSON */
  damaged: number;
  /** bytes of a last line without its LF */
  tornBytes: number;
}

/** Parses a journal file's bytes (empty: no records). Throws on another version's header. */
export function decodeJournal(buf: Buffer, name: string): DecodedJournal {
  const text = buf.toString('utf8');
  const out: DecodedJournal = { records: [], damaged: 0, tornBytes: 0 };
  const end = text.lastIndexOf('\n') + 1;
  out.tornBytes = Buffer.byteLength(text.slice(end));
  if (end === 0) return out;
  const lines = text.slice(0, end - 1).split('\n');
  if (lines[0] !== JOURNAL_HEADER.slice(0, -1)) {
    if (lines[0]!.startsWith('ugcfs-edge-purges ')) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${name} is edge purge journal "${lines[0]}", this ugcfs reads version ${PURGE_JOURNAL_VERSION} only`);
    out.damaged = lines.length;
    return out;
  }
  for (const line of lines.slice(1)) {
    const r = decodeLine(line);
    if (r) out.records.push(r);
    else out.damaged++;
  }
  return out;
}

export interface PendingPurge {
  job: JournalJob;
  /** the edges (labels) that confirmed it before the restart */
  done: Set<string>;
}

/** The purges `records` leave pending, oldest first, those older than `now - MAX_AGE_MS` left out (counted). */
export function pendingPurges(records: readonly JournalRecord[], now: number): { pending: PendingPurge[]; expired: number } {
  const byId = new Map<number, PendingPurge>();
  for (const r of records) {
    if (r.kind === 'queued') byId.set(r.job.id, { job: r.job, done: new Set() });
    else byId.get(r.id)?.done.add(r.edge);
  }
  const all = [...byId.values()];
  const pending = all.filter((p) => now - p.job.since <= MAX_AGE_MS);
  return { pending, expired: all.length - pending.length };
}

interface Live {
  line: string;
  /** edges still to confirm */
  remaining: Set<string>;
  bytes: number;
}

export class PurgeJournal {
  private readonly live = new Map<number, Live>();
  private nextId = 1;
  private liveBytes = 0;
  private fileBytes = 0;
  private buffered: string[] = [];
  private waiters: Array<() => void> = [];
  private flushing = false;
  /** the running flush, which ends once nothing is buffered */
  private flushed: Promise<void> = Promise.resolve();
  private failed = false;
  private full = false;

  private constructor(private readonly path: string, private fh: FileHandle, private readonly edges: readonly string[], private readonly log: Logger) {}

  /**
   * Opens the journal at `path` for the edges `edges` (their labels) and returns what is still
   * pending there, plus in the journals `adopt` (a worker no longer run), each purge with the
   * edges it is still owed to. The file is compacted first; the adopted files are removed after.
   */
  static async open(path: string, edges: readonly string[], log: Logger, adopt: readonly string[] = []): Promise<{ journal: PurgeJournal; pending: Array<{ job: JournalJob; edges: string[] }> }> {
    const now = Date.now();
    const found: JournalRecord[][] = [];
    for (const file of [path, ...adopt]) {
      const buf = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return Buffer.alloc(0);
        throw err;
      });
      const d = decodeJournal(buf, file);
      if (d.damaged > 0 || d.tornBytes > 0) log.warn({ journal: file, damagedLines: d.damaged, tornBytes: d.tornBytes }, 'edge purge journal: damaged lines or a torn last append skipped');
      found.push(d.records);
    }
    const journal = new PurgeJournal(path, undefined as unknown as FileHandle, edges, log);
    const out: Array<{ job: JournalJob; edges: string[] }> = [];
    let expired = 0;
    for (const records of found) {
      const p = pendingPurges(records, now);
      expired += p.expired;
      for (const { job, done } of p.pending) {
        const owed = edges.filter((e) => !done.has(e));
        if (owed.length === 0) continue;
        // ids restart from 1 in the compacted file; adopted files have ids of their own
        const renumbered = { ...job, id: journal.nextId++ };
        journal.keep(renumbered, owed);
        out.push({ job: renumbered, edges: owed });
      }
    }
    if (expired > 0) log.warn({ journal: path, expired, maxAgeDays: MAX_AGE_MS / 86_400_000 }, 'edge purge journal: purges pending too long dropped');
    await journal.rewrite();
    journal.fh = await open(path, 'a');
    for (const file of adopt) await rm(file, { force: true });
    if (adopt.length > 0) await syncDir(dirname(path));
    return { journal, pending: out };
  }

  private keep(job: JournalJob, owed: readonly string[]): string {
    const line = encodeRecord({ kind: 'queued', job });
    const bytes = Buffer.byteLength(line);
    this.live.set(job.id, { line, remaining: new Set(owed), bytes });
    this.liveBytes += bytes;
    return line;
  }

  /** The live purges as a fresh file: each queued line, and a done line per edge already confirmed. */
  private async rewrite(): Promise<void> {
    let text = JOURNAL_HEADER;
    for (const [id, l] of this.live) {
      text += l.line;
      for (const edge of this.edges) if (!l.remaining.has(edge)) text += encodeRecord({ kind: 'done', id, edge });
    }
    await writeFileDurable(this.path, text);
    this.fileBytes = Buffer.byteLength(text);
  }

  /**
   * Journals a purge owed to every edge; resolves once it is on disk. Undefined (kept in
   * memory only, logged) when the journal failed or is at its bound.
   */
  queue(job: Omit<JournalJob, 'id'>): { id: number; durable: Promise<void> } | undefined {
    if (this.failed) return undefined;
    if (this.liveBytes >= MAX_PENDING_BYTES) {
      if (!this.full) this.log.error({ journal: this.path, pendingBytes: this.liveBytes }, 'edge purge journal full: new purges are kept in memory only until edges catch up');
      this.full = true;
      return undefined;
    }
    this.full = false;
    const id = this.nextId++;
    const line = this.keep({ id, ...job }, this.edges);
    const durable = new Promise<void>((resolve) => this.waiters.push(resolve));
    this.append(line);
    return { id, durable };
  }

  /** `edge` confirmed purge `id` (or gave it up): appended without waiting for disk. */
  done(id: number, edge: string): void {
    const l = this.live.get(id);
    if (!l || !l.remaining.delete(edge)) return;
    const line = encodeRecord({ kind: 'done', id, edge });
    if (l.remaining.size === 0) {
      this.live.delete(id);
      this.liveBytes -= l.bytes;
    } else {
      l.bytes += Buffer.byteLength(line);
      this.liveBytes += Buffer.byteLength(line);
    }
    if (!this.failed) this.append(line);
  }

  private append(line: string): void {
    this.buffered.push(line);
    if (!this.flushing) this.flushed = this.flush();
  }

  /** One writer: what was appended meanwhile goes in one write, and one fdatasync when a queue() waits on it. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.buffered.length > 0) {
        const text = this.buffered.join('');
        const waiters = this.waiters;
        this.buffered = [];
        this.waiters = [];
        try {
          if (!this.failed) {
            await this.fh.write(text);
            this.fileBytes += Buffer.byteLength(text);
            if (waiters.length > 0) await this.fh.datasync();
            if (this.fileBytes > 2 * this.liveBytes + COMPACT_SLACK) await this.compact();
          }
        } catch (err) {
          this.failed = true;
          this.log.error({ journal: this.path, err: (err as Error).message }, 'edge purge journal write failed: pending purges are kept in memory only until restart');
        }
        for (const w of waiters) w();
      }
    } finally {
      this.flushing = false;
    }
  }

  private async compact(): Promise<void> {
    await this.fh.close();
    await this.rewrite();
    this.fh = await open(this.path, 'a');
  }

  /** /healthz: bytes on disk and bytes still pending */
  health(): { edgePurgeJournalBytes: number; edgePurgeJournalFailed?: true } {
    return { edgePurgeJournalBytes: this.fileBytes, ...(this.failed ? { edgePurgeJournalFailed: true as const } : {}) };
  }

  /** Lets what is buffered reach the file, then closes it. */
  async close(): Promise<void> {
    await this.flushed;
    await this.fh.close().catch(() => {});
  }
}
