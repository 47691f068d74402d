// quarantine/: where a data server puts bytes it will not serve but cannot prove are garbage
// (a leftover block generation, an unfinished copy, a torn tail, a copy the name server
// ordered removed). Nothing else on a data server unlinks or truncates data that was not
// proven garbage; quarantined files go only by an explicit removal (DELETE /quarantine/<name>)
// or once older than --quarantine-keep-hours, judged by the cluster clock.
//
// Layout, version 1: one plain file per item, `<at>.<reason>.<source>`, where <at> is the
// time it was quarantined (ms since the epoch, decimal), <reason> one of QUARANTINE_REASONS,
// and <source> the file's name in blocks/ (`<id>.<gen>.blk`), with `.tail-<offset>` for the
// bytes of a tail cut at <offset>. The bytes are exactly those that were in blocks/, so a
// file can be put back by hand (rename into blocks/, restart). Every move is made durable
// (both directories fsynced) before the index forgets what was moved.
import { copyFile, open, readdir, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { mkdirDurable, syncDir, syncFile } from '../src/base/durable-fs.ts';
import { writeAll } from './file-write.ts';

export const QUARANTINE_REASONS = [
  /** a pull that never finished: a partial copy of a block that lives elsewhere */
  'incomplete-copy',
  /** a block generation the index does not name (compaction's old or unfinished output) */
  'leftover-generation',
  /** bytes after the last whole record of a block, cut on open */
  'torn-tail',
  /** a copy the name server ordered removed (extra copy, abandoned creation) */
  'nameserver-order',
] as const;
export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];

export interface QuarantineItem {
  name: string;
  bytes: number;
  reason: QuarantineReason;
  /** when it was quarantined, ms since the epoch */
  at: number;
}

const NAME = new RegExp(`^(\\d{1,15})\\.(${QUARANTINE_REASONS.join('|')})\\.([A-Za-z0-9._-]{1,200})$`);

export function quarantineName(at: number, reason: QuarantineReason, source: string): string {
  return `${Math.floor(at)}.${reason}.${source}`;
}

export function parseQuarantineName(name: string): Omit<QuarantineItem, 'bytes' | 'name'> & { source: string } | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  return { at: Number(m[1]), reason: m[2] as QuarantineReason, source: m[3]! };
}

export class Quarantine {
  private readonly items = new Map<string, QuarantineItem>();

  private constructor(
    readonly dir: string,
    private readonly metrics: Metrics | undefined,
    private readonly log: Logger | undefined,
  ) {}

  static async open(dir: string, opts: { metrics?: Metrics; log?: Logger } = {}): Promise<Quarantine> {
    await mkdirDurable(dir);
    const q = new Quarantine(dir, opts.metrics, opts.log);
    for (const name of await readdir(dir)) {
      const p = parseQuarantineName(name);
      if (!p) continue; // a stray file (an unfinished copy's temp, an operator's note): left alone
      const s = await stat(join(dir, name));
      q.items.set(name, { name, bytes: s.size, reason: p.reason, at: p.at });
    }
    q.updateGauges();
    return q;
  }

  /** Moves a file of `fromDir` here (same file system: a rename), durably. */
  async moveIn(fromDir: string, source: string, reason: QuarantineReason, at = Date.now()): Promise<QuarantineItem> {
    const name = quarantineName(at, reason, source);
    const from = join(fromDir, source);
    const { size } = await stat(from);
    try {
      await rename(from, join(this.dir, name));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      // A quarantine/ mounted elsewhere: copy, make the copy durable, then remove the source.
      await copyFile(from, join(this.dir, name));
      await syncFile(join(this.dir, name));
      await syncDir(this.dir);
      await unlink(from);
    }
    await syncDir(this.dir);
    await syncDir(fromDir);
    return this.added({ name, bytes: size, reason, at }, source);
  }

  /** Copies bytes [from, to) of an open file here, durably (before the caller cuts them). */
  async copyIn(fh: FileHandle, from: number, to: number, source: string, reason: QuarantineReason, at = Date.now()): Promise<QuarantineItem> {
    const name = quarantineName(at, reason, `${source}.tail-${from}`);
    const out = await open(join(this.dir, name), 'w');
    try {
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, Math.max(1, to - from)));
      for (let pos = from; pos < to; ) {
        const { bytesRead } = await fh.read(chunk, 0, Math.min(chunk.length, to - pos), pos);
        if (bytesRead === 0) break;
        await writeAll(out, chunk.subarray(0, bytesRead), pos - from);
        pos += bytesRead;
      }
      await out.sync();
    } finally {
      await out.close();
    }
    await syncDir(this.dir);
    return this.added({ name, bytes: to - from, reason, at }, source);
  }

  list(): QuarantineItem[] {
    return [...this.items.values()].sort((a, b) => a.at - b.at || (a.name < b.name ? -1 : 1));
  }

  stats(): { files: number; bytes: number } {
    let bytes = 0;
    for (const it of this.items.values()) bytes += it.bytes;
    return { files: this.items.size, bytes };
  }

  /** Removes one item (an operator's explicit order); false when there is no such item. */
  async remove(name: string): Promise<boolean> {
    if (!this.items.has(name)) return false;
    await unlink(join(this.dir, name)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    this.items.delete(name);
    this.updateGauges();
    this.log?.warn({ quarantined: name }, 'removed a quarantined file');
    return true;
  }

  /**
   * Removes items quarantined more than `keepMs` before `now`. `now` undefined (no clock
   * two sources agree on yet) or keepMs 0 (keep for ever) removes nothing.
   */
  async expire(keepMs: number, now: number | undefined): Promise<number> {
    if (keepMs <= 0 || now === undefined) return 0;
    let n = 0;
    for (const it of this.list()) {
      if (it.at + keepMs > now) continue;
      if (await this.remove(it.name)) n++;
    }
    return n;
  }

  private added(item: QuarantineItem, source: string): QuarantineItem {
    this.items.set(item.name, item);
    this.updateGauges();
    this.log?.warn({ quarantined: item.name, from: source, reason: item.reason, bytes: item.bytes }, 'moved data to quarantine instead of removing it');
    return item;
  }

  private updateGauges(): void {
    if (!this.metrics) return;
    const s = this.stats();
    this.metrics.quarantineFiles.set(s.files);
    this.metrics.quarantineBytes.set(s.bytes);
  }
}
