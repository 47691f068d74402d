// How the origin turns a legacy path into something it can serve. The default resolver
// asks the name server's legacy table (with a small cache, since storefront pages repeat the
// same old URLs); the legacy-migration work (origin/legacy-*.ts) supplies a resolver
// with fetchThrough for read-through from an old origin. Paths arrive canonical
// (src/wire/legacy-path.ts), variant suffix already split off.
import type { FileStore } from './file-store.ts';
import { MemoryCache } from './memory-cache.ts';

export interface LegacyResolver {
  /** the fid mapped to `path`, if any */
  lookup(path: string): Promise<string | undefined>;
  /** bytes for an unmapped path (e.g. from the old origin); served through the same pipeline */
  fetchThrough?(path: string): Promise<{ data: Buffer; mime: string } | undefined>;
  /** called when the origin stops (e.g. to drain background imports) */
  close?(): Promise<void>;
}

export interface LegacyResolverOptions {
  /** how long a mapping (or its absence) is remembered */
  ttlMs?: number;
  maxEntries?: number;
}

interface Remembered {
  fid: string | undefined;
  until: number;
  bytes: number;
}

export function defaultLegacyResolver(store: Pick<FileStore, 'legacyGet'>, opts: LegacyResolverOptions = {}): LegacyResolver & { forget(path?: string): void } {
  const ttl = opts.ttlMs ?? 30_000;
  // Absences are remembered briefly too, so junk URLs cannot hammer the name server.
  const missTtl = Math.min(ttl, 5_000);
  const maxEntries = opts.maxEntries ?? 10_000;
  const cache = new MemoryCache<Remembered>(maxEntries, 1);
  return {
    async lookup(path) {
      const hit = cache.get(path);
      if (hit && hit.until > Date.now()) return hit.fid;
      const fid = await store.legacyGet(path);
      cache.set(path, { fid, until: Date.now() + (fid ? ttl : missTtl), bytes: 1 });
      return fid;
    },
    forget(path) {
      if (path === undefined) cache.deleteWhere(() => true);
      else cache.delete(path);
    },
  };
}
