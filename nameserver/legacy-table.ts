// The legacy table: old URL path -> fid, kept in the name server's LevelDB (sublevel
// "legacy") so it survives restarts; unlike the block map it cannot be rebuilt from data
// server reports. Keys are canonical legacy paths (src/wire/legacy-path.ts), so every spelling of
// an old URL finds the same row.
import { UgcfsError } from '../src/base/errors.ts';
import { decodeFid } from '../src/wire/file-id.ts';
import { legacyPathFromName } from '../src/wire/legacy-path.ts';
import type { LegacyList, LegacyMapping, LegacyPut } from '../src/wire/protocol.ts';
import type { Namespace } from './metadata-store/index.ts';

export interface LegacyRecord {
  fid: string;
  sha256?: string;
  size?: number;
  updatedAt: number;
}

export const LEGACY_LIST_MAX = 1000;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export interface LegacySetResult {
  mapping: LegacyMapping;
  /** the mapping this one replaced, if any */
  previous?: LegacyMapping;
  /** false when the same fid (and checksum) was already mapped: nothing was written */
  changed: boolean;
}

export class LegacyTable {
  private readonly rows: Namespace<LegacyRecord>;
  // Sets on one path are serialised, so an `ifAbsent` create cannot race another writer
  // between its read and its put.
  private readonly locks = new Map<string, Promise<unknown>>();

  /** `rows`: the name server's JSON sublevel "legacy" */
  constructor(rows: Namespace<LegacyRecord>) {
    this.rows = rows;
  }

  async get(rawPath: string): Promise<LegacyMapping | undefined> {
    const path = legacyPathFromName(rawPath);
    const rec = await this.rows.get(path);
    return rec === undefined ? undefined : toMapping(path, rec);
  }

  async set(put: LegacyPut): Promise<LegacySetResult> {
    const path = legacyPathFromName(put.path);
    decodeFid(put.fid);
    if (put.sha256 !== undefined && (typeof put.sha256 !== 'string' || !SHA256_HEX.test(put.sha256))) {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'sha256 must be 64 lowercase hex digits');
    }
    if (put.size !== undefined && (!Number.isSafeInteger(put.size) || put.size < 0)) {
      throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'size must be a non-negative integer');
    }
    return this.locked(path, async () => {
      const old = await this.rows.get(path);
      if (old && put.ifAbsent && old.fid !== put.fid) {
        throw new UgcfsError('UGCFS_ERR_CONFLICT', `legacy path ${path} is already mapped`);
      }
      if (old && old.fid === put.fid && (put.sha256 === undefined || old.sha256 === put.sha256)) {
        return { mapping: toMapping(path, old), previous: toMapping(path, old), changed: false };
      }
      const rec: LegacyRecord = { fid: put.fid, updatedAt: Date.now() };
      if (put.sha256 !== undefined) rec.sha256 = put.sha256;
      if (put.size !== undefined) rec.size = put.size;
      // Synced before the answer: the table cannot be rebuilt from anything else.
      await this.rows.put(path, rec);
      return { mapping: toMapping(path, rec), ...(old ? { previous: toMapping(path, old) } : {}), changed: true };
    });
  }

  /** True when a mapping was removed. */
  async delete(rawPath: string): Promise<boolean> {
    const path = legacyPathFromName(rawPath);
    return this.locked(path, async () => {
      const old = await this.rows.get(path);
      if (old === undefined) return false;
      await this.rows.del(path);
      return true;
    });
  }

  /** Pages through mappings in key order, optionally under a path prefix. */
  async list(opts: { prefix?: string; after?: string; limit?: number } = {}): Promise<LegacyList> {
    const limit = Math.min(Math.max(1, opts.limit ?? 100), LEGACY_LIST_MAX);
    // A prefix is a path too ("/uploads" lists "/uploads/..."), so it is canonicalised the same way.
    const prefix = opts.prefix && opts.prefix !== '/' ? legacyPathFromName(opts.prefix) + '/' : '/';
    // Every key under "/a/" sorts below "/a0" ("0" follows "/" in byte order), whatever its characters.
    const range: { gte?: string; gt?: string; lt: string; limit: number } = { lt: prefix.slice(0, -1) + '0', limit: limit + 1 };
    if (opts.after && opts.after >= prefix) range.gt = opts.after;
    else range.gte = prefix;
    const mappings: LegacyMapping[] = [];
    for await (const [path, rec] of this.rows.iterator(range)) mappings.push(toMapping(path, rec));
    if (mappings.length > limit) {
      mappings.length = limit;
      return { mappings, next: mappings[limit - 1]!.path };
    }
    return { mappings };
  }

  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}

function toMapping(path: string, rec: LegacyRecord): LegacyMapping {
  const m: LegacyMapping = { path, fid: rec.fid, updatedAt: rec.updatedAt };
  if (rec.sha256 !== undefined) m.sha256 = rec.sha256;
  if (rec.size !== undefined) m.size = rec.size;
  return m;
}
