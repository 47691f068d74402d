// --max-variants-per-file: how many distinct variants this origin makes of one file. Every
// width, quality and format of a URL is a new render and a new cache entry, so without a cap
// one file can be turned into thousands of both. Presets are exempt (the operator chose
// them); a variant already cached is a hit and never reaches this check.
//
// Kept per origin process, in memory: per file a set of 32-bit hashes of the variant keys
// made, for the most recently used files (MAX_FILES). A file that falls out of the table
// starts a fresh count, so the cap bounds what one file costs within the table's memory,
// and --variant-rate bounds how fast anyone can cycle files through it.
import { createHash } from 'node:crypto';
import { UgcfsError } from '../src/base/errors.ts';

export const MAX_FILES = 20_000;

function keyHash(key: string): number {
  return createHash('sha1').update(key).digest().readUInt32BE(0);
}

export class VariantBudget {
  private readonly made = new Map<string, Set<number>>();

  /** `max` 0: no cap */
  constructor(private readonly max: number, private readonly maxFiles = MAX_FILES) {}

  /** files tracked now (healthz) */
  get size(): number {
    return this.made.size;
  }

  /** Throws 403 UGCFS_ERR_TOO_MANY_VARIANTS when `key` would be a new variant past the cap. */
  check(source: string, key: string): void {
    if (this.max === 0) return;
    const set = this.made.get(source);
    if (set === undefined || set.size < this.max || set.has(keyHash(key))) return;
    throw new UgcfsError('UGCFS_ERR_TOO_MANY_VARIANTS', `this file already has ${this.max} variants; use a preset or a size already served`);
  }

  /** Counts `key` as made for `source`. */
  record(source: string, key: string): void {
    if (this.max === 0) return;
    let set = this.made.get(source);
    if (set === undefined) {
      while (this.made.size >= this.maxFiles) {
        const oldest = this.made.keys().next();
        if (oldest.done) break;
        this.made.delete(oldest.value);
      }
      set = new Set();
    } else {
      this.made.delete(source); // re-inserted: least recently used first
    }
    this.made.set(source, set);
    set.add(keyHash(key));
  }

  /** Forgets a deleted file. */
  forget(source: string): void {
    this.made.delete(source);
  }
}
