// The needle index's entry cache: a bounded (block, key) -> IndexEntry map held in typed
// arrays (open addressing with linear probing, CLOCK eviction), so a cached entry is no
// object on the JavaScript heap. The Map it replaced put two objects per write into the old
// generation (every append is cached, for the read that usually follows an upload) and
// evicted them again, and that churn set off a mark-compact every few dozen milliseconds
// under a steady write load (dataserver/README.md, "Index entry cache").
import type { IndexEntry } from './needle-index.ts';

const EMPTY = 0;
const TWO_32 = 2 ** 32;

export class IndexEntryCache {
  /** slots in the table: a power of two, at least a third of them always empty */
  private readonly mask: number;
  // One slot per index: the id (block, key's high and low 32 bits) and the entry.
  private readonly used: Uint8Array;
  private readonly blocks: Uint32Array;
  private readonly keyHi: Uint32Array;
  private readonly keyLo: Uint32Array;
  private readonly offsets: Float64Array;
  private readonly lengths: Uint32Array;
  private readonly cookies: Uint32Array;
  private readonly flags: Uint8Array;
  /** CLOCK's reference bit: set on every hit, cleared as the hand passes */
  private readonly referenced: Uint8Array;
  private hand = 0;
  private count = 0;
  // The key being looked up, split into 32-bit words (set by split()).
  private hi = 0;
  private lo = 0;

  constructor(private readonly capacity: number) {
    let slots = 8;
    while (slots < Math.ceil(Math.max(capacity, 1) * 1.5)) slots *= 2;
    this.mask = capacity > 0 ? slots - 1 : 0;
    const n = capacity > 0 ? slots : 0;
    this.used = new Uint8Array(n);
    this.blocks = new Uint32Array(n);
    this.keyHi = new Uint32Array(n);
    this.keyLo = new Uint32Array(n);
    this.offsets = new Float64Array(n);
    this.lengths = new Uint32Array(n);
    this.cookies = new Uint32Array(n);
    this.flags = new Uint8Array(n);
    this.referenced = new Uint8Array(n);
  }

  get size(): number {
    return this.count;
  }

  get(block: number, key: bigint): IndexEntry | undefined {
    if (this.capacity <= 0) return undefined;
    const i = this.find(block, key);
    if (i < 0) return undefined;
    this.referenced[i] = 1;
    return { offset: this.offsets[i]!, length: this.lengths[i]!, cookie: this.cookies[i]!, flags: this.flags[i]! };
  }

  set(block: number, key: bigint, e: IndexEntry): void {
    if (this.capacity <= 0) return;
    let i = this.find(block, key);
    if (i < 0) {
      if (this.count >= this.capacity) this.evictOne();
      // The eviction may have moved entries: probe again for the free slot.
      i = this.home(block, this.hi, this.lo);
      while (this.used[i] !== EMPTY) i = (i + 1) & this.mask;
      this.used[i] = 1;
      this.blocks[i] = block;
      this.keyHi[i] = this.hi;
      this.keyLo[i] = this.lo;
      this.count++;
    }
    this.offsets[i] = e.offset;
    this.lengths[i] = e.length;
    this.cookies[i] = e.cookie;
    this.flags[i] = e.flags;
    // A fresh entry starts unreferenced: one pass of the hand without a read evicts it.
    this.referenced[i] = 0;
  }

  delete(block: number, key: bigint): void {
    if (this.capacity <= 0) return;
    const i = this.find(block, key);
    if (i >= 0) this.remove(i);
  }

  clear(): void {
    this.used.fill(EMPTY);
    this.referenced.fill(0);
    this.count = 0;
  }

  /** Splits the key into this.hi/this.lo (BigInt arithmetic only for keys past 2^53). */
  private split(key: bigint): void {
    if (key <= 0x1fffffffffffffn) {
      const n = Number(key);
      this.lo = n % TWO_32;
      this.hi = (n - this.lo) / TWO_32;
    } else {
      this.lo = Number(key & 0xffffffffn);
      this.hi = Number((key >> 32n) & 0xffffffffn);
    }
  }

  /** The slot an id hashes to. */
  private home(block: number, hi: number, lo: number): number {
    let h = Math.imul(lo ^ Math.imul(hi, 0x9e3779b1), 0x85ebca6b) ^ Math.imul(block, 0xc2b2ae35);
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d);
    h ^= h >>> 13;
    return h & this.mask;
  }

  private find(block: number, key: bigint): number {
    this.split(key);
    const hi = this.hi;
    const lo = this.lo;
    for (let i = this.home(block, hi, lo); this.used[i] !== EMPTY; i = (i + 1) & this.mask) {
      if (this.keyLo[i] === lo && this.blocks[i] === block && this.keyHi[i] === hi) return i;
    }
    return -1;
  }

  /** CLOCK: the first entry the hand reaches that was not read since the hand last passed it. */
  private evictOne(): void {
    for (;;) {
      this.hand = (this.hand + 1) & this.mask;
      if (this.used[this.hand] === EMPTY) continue;
      if (this.referenced[this.hand] === 1) {
        this.referenced[this.hand] = 0;
        continue;
      }
      this.remove(this.hand);
      return;
    }
  }

  /** Empties slot i, shifting later entries of its probe run back (no tombstones). */
  private remove(i: number): void {
    let hole = i;
    for (let j = (i + 1) & this.mask; this.used[j] !== EMPTY; j = (j + 1) & this.mask) {
      const h = this.home(this.blocks[j]!, this.keyHi[j]!, this.keyLo[j]!);
      // The entry at j may fill the hole only if its home is not cyclically within (hole, j].
      const stays = hole <= j ? hole < h && h <= j : hole < h || h <= j;
      if (stays) continue;
      this.used[hole] = 1;
      this.blocks[hole] = this.blocks[j]!;
      this.keyHi[hole] = this.keyHi[j]!;
      this.keyLo[hole] = this.keyLo[j]!;
      this.offsets[hole] = this.offsets[j]!;
      this.lengths[hole] = this.lengths[j]!;
      this.cookies[hole] = this.cookies[j]!;
      this.flags[hole] = this.flags[j]!;
      this.referenced[hole] = this.referenced[j]!;
      hole = j;
    }
    this.used[hole] = EMPTY;
    this.referenced[hole] = 0;
    this.count--;
  }
}
