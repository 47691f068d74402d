// The warm tier: variants on local disk, bounded by bytes, oldest evicted first. A file is
// named <hash of fid>-<hash of fid+variant key>, so a purge finds every variant of a fid
// without reading files, and is written to a temporary name and renamed into place, so a
// crash never leaves a half-written entry under a real name. Each file starts with a
// length-prefixed JSON header naming its key, which guards against hash collisions.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface DiskEntryMeta {
  key: string;
  mime: string;
  etag: string;
  lastModified: number;
  negotiated: boolean;
}

const TMP_PREFIX = '.tmp-';

function hash(text: string, chars: number): string {
  return createHash('sha256').update(text).digest('hex').slice(0, chars);
}

export class DiskCache {
  /** file name -> size; Map order is eviction order (oldest first) */
  private readonly index = new Map<string, number>();
  private used = 0;

  constructor(private readonly dir: string, private readonly maxBytes: number) {}

  static fileName(fid: string, key: string): string {
    return `${hash(fid, 16)}-${hash(`${fid}|${key}`, 32)}`;
  }

  async init(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const found: Array<{ name: string; size: number; mtime: number }> = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.startsWith(TMP_PREFIX)) { await unlink(path).catch(() => {}); continue; }
      if (!/^[0-9a-f]{16}-[0-9a-f]{32}$/.test(name)) continue;
      try {
        const s = await stat(path);
        found.push({ name, size: s.size, mtime: s.mtimeMs });
      } catch {
        // raced with a delete
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) { this.index.set(f.name, f.size); this.used += f.size; }
    await this.evict();
  }

  async get(fid: string, key: string): Promise<{ meta: DiskEntryMeta; body: Buffer } | undefined> {
    const name = DiskCache.fileName(fid, key);
    const size = this.index.get(name);
    if (size === undefined) return undefined;
    let raw: Buffer;
    try {
      raw = await readFile(join(this.dir, name));
    } catch {
      this.forget(name);
      return undefined;
    }
    const parsed = parseEntry(raw);
    if (!parsed || parsed.meta.key !== `${fid}|${key}`) return undefined;
    this.index.delete(name);
    this.index.set(name, size);
    return { meta: { ...parsed.meta, key }, body: parsed.body };
  }

  /** Stores an entry; `stillWanted` is asked after the rename, so a purge racing this write wins. */
  async set(fid: string, meta: DiskEntryMeta, body: Buffer, stillWanted: () => boolean): Promise<void> {
    const name = DiskCache.fileName(fid, meta.key);
    const header = Buffer.from(JSON.stringify({ ...meta, key: `${fid}|${meta.key}` }));
    const len = Buffer.alloc(4);
    len.writeUInt32BE(header.length);
    const data = Buffer.concat([len, header, body]);
    if (data.length > this.maxBytes) return;
    const tmp = join(this.dir, `${TMP_PREFIX}${randomBytes(6).toString('hex')}`);
    await writeFile(tmp, data);
    await rename(tmp, join(this.dir, name));
    if (!stillWanted()) {
      await unlink(join(this.dir, name)).catch(() => {});
      return;
    }
    this.forget(name);
    this.index.set(name, data.length);
    this.used += data.length;
    await this.evict();
  }

  /** Deletes every variant of `fid`; returns how many files went. */
  async purge(fid: string): Promise<number> {
    return this.purgeMany([fid]);
  }

  /** Deletes every variant of each fid in one walk of the index (a delete-feed page holds up to 1,000 fids). */
  async purgeMany(fids: Iterable<string>): Promise<number> {
    const prefixes = new Set<string>();
    for (const fid of fids) prefixes.add(hash(fid, 16));
    if (prefixes.size === 0) return 0;
    const names = [...this.index.keys()].filter((n) => prefixes.has(n.slice(0, 16)));
    for (const name of names) {
      this.forget(name);
      await unlink(join(this.dir, name)).catch(() => {});
    }
    return names.length;
  }

  get usedBytes(): number {
    return this.used;
  }

  get entries(): number {
    return this.index.size;
  }

  private forget(name: string): void {
    const size = this.index.get(name);
    if (size === undefined) return;
    this.index.delete(name);
    this.used -= size;
  }

  private async evict(): Promise<void> {
    while (this.used > this.maxBytes) {
      const oldest = this.index.keys().next();
      if (oldest.done) break;
      this.forget(oldest.value);
      await unlink(join(this.dir, oldest.value)).catch(() => {});
    }
  }
}

function parseEntry(raw: Buffer): { meta: DiskEntryMeta; body: Buffer } | undefined {
  if (raw.length < 4) return undefined;
  const len = raw.readUInt32BE(0);
  if (4 + len > raw.length) return undefined;
  try {
    const meta = JSON.parse(raw.toString('utf8', 4, 4 + len)) as DiskEntryMeta;
    return { meta, body: raw.subarray(4 + len) };
  } catch {
    return undefined;
  }
}
