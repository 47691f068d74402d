// The hot tier: a byte-bounded LRU over whole responses. A Map keeps insertion order, so
// re-inserting on every hit makes the first key the least recently used one.

export interface Sized {
  /** bytes this entry holds */
  readonly bytes: number;
}

export class MemoryCache<V extends Sized> {
  private readonly map = new Map<string, V>();
  private used = 0;

  constructor(private readonly maxBytes: number, private readonly maxEntryBytes = Math.max(1, Math.floor(maxBytes / 8))) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** Returns false when the entry is too big to be worth holding. */
  set(key: string, value: V): boolean {
    if (value.bytes > this.maxEntryBytes) return false;
    this.delete(key);
    this.map.set(key, value);
    this.used += value.bytes;
    while (this.used > this.maxBytes) {
      const oldest = this.map.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
    return true;
  }

  delete(key: string): void {
    const v = this.map.get(key);
    if (v === undefined) return;
    this.map.delete(key);
    this.used -= v.bytes;
  }

  /** Drops every key for which `match` is true (a purge walks all keys: purges are rare). */
  deleteWhere(match: (key: string) => boolean): number {
    let n = 0;
    for (const k of [...this.map.keys()]) if (match(k)) { this.delete(k); n++; }
    return n;
  }

  get size(): number {
    return this.map.size;
  }

  get usedBytes(): number {
    return this.used;
  }
}
