// What this origin served, per file: the exact URLs (path and query as the client sent
// them, which is the cache key of an nginx edge: `proxy_cache_key $request_uri`) and the
// legacy paths. An edge that purges by exact key (nginx's cache-purge module) can only be
// told to forget what it was given, so after a delete each of these URLs is purged there.
// Only this process knows what it served, so the record is per origin (per worker), kept in
// memory and bounded: the oldest files go first once --purge-remember-urls is reached. A
// graceful stop saves it and the next start loads it (origin/purge-url-snapshot.ts); a crash
// forgets it, and the nginx edge's own 10-minute validity bounds what is then missed. A purge
// already queued keeps its URLs in the purge journal (origin/purge-journal.ts).
import { legacyKey } from './edge-purge-keys.ts';

/** URLs longer than this are not remembered (the origin refuses URLs over 2 KiB anyway). */
export const MAX_REMEMBERED_URL = 2048;
/** distinct URLs remembered per file: extensions, suffixes and queries of its variants */
export const URLS_PER_FILE = 256;

interface Record {
  urls: Set<string>;
  /** canonical legacy paths the file was reached by */
  legacy: Set<string> | undefined;
}

export interface ServedFile {
  urls: string[];
  /** the fid and the keys of the legacy paths served (origin/edge-purge-keys.ts) */
  keys: string[];
  /** the canonical legacy paths served */
  legacyPaths: string[];
}

export class ServedUrls {
  private readonly files = new Map<string, Record>();
  private count = 0;
  /**
   * Bumped whenever a record is removed (taken or evicted): a caller that saw a URL noted
   * under the current generation knows it is still remembered, without looking it up
   * (the hit path keeps it in its memo).
   */
  generation = 0;

  /** `forgot(n)`: n URLs given up to stay within the bound (a metric) */
  constructor(private readonly maxUrls: number, private readonly forgot: (n: number) => void = () => {}) {}

  /** Notes that `url` served `fid` (reached by `legacyPath`, if by one). Cheap when already known. */
  note(fid: string, url: string, legacyPath?: string): void {
    const r = this.files.get(fid);
    if (r !== undefined && r.urls.has(url) && (legacyPath === undefined || r.legacy?.has(legacyPath))) return;
    if (url.length > MAX_REMEMBERED_URL || this.maxUrls === 0) return this.forgot(1);
    let rec = r;
    if (rec === undefined) {
      rec = { urls: new Set(), legacy: undefined };
    } else {
      // a file served something new moves to the young end of the eviction order
      this.files.delete(fid);
    }
    this.files.set(fid, rec);
    if (!rec.urls.has(url)) {
      if (rec.urls.size >= URLS_PER_FILE) return this.forgot(1);
      rec.urls.add(url);
      this.count++;
    }
    // only with a URL kept, so a file's legacy paths are bounded by its URLs
    if (legacyPath !== undefined) (rec.legacy ??= new Set()).add(legacyPath);
    while (this.count > this.maxUrls) {
      const oldest = this.files.keys().next();
      if (oldest.done) break;
      const n = this.files.get(oldest.value)!.urls.size;
      this.files.delete(oldest.value);
      this.count -= n;
      this.generation++;
      this.forgot(n);
    }
  }

  /** Removes and returns what `fid` was served by; undefined when nothing is remembered. */
  take(fid: string): ServedFile | undefined {
    const r = this.files.get(fid);
    if (r === undefined) return undefined;
    this.files.delete(fid);
    this.count -= r.urls.size;
    this.generation++;
    const legacyPaths = [...(r.legacy ?? [])];
    return { urls: [...r.urls], keys: [fid, ...legacyPaths.map(legacyKey)], legacyPaths };
  }

  /** What is remembered, file by file, the oldest first (origin/purge-url-snapshot.ts). */
  *records(): IterableIterator<{ fid: string; urls: string[]; legacy: string[] }> {
    for (const [fid, r] of this.files) yield { fid, urls: [...r.urls], legacy: [...(r.legacy ?? [])] };
  }

  /** URLs remembered now. */
  get size(): number {
    return this.count;
  }
}
