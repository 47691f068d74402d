// A small number for each data server id, so the block and copy tables store two bytes per
// reference instead of a string. Numbers are never reused within a process.
import { UgcfsError } from '../src/base/errors.ts';

/** Enough for any cluster we plan for, and fits the tables' Uint16 columns. */
const MAX_SERVERS = 0xffff;

export class ServerIndex {
  private readonly numbers = new Map<string, number>();
  private readonly ids: string[] = [];

  /** The number of `id`, given one on first use. */
  of(id: string): number {
    let n = this.numbers.get(id);
    if (n === undefined) {
      if (this.ids.length >= MAX_SERVERS) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `more than ${MAX_SERVERS} data server ids seen`);
      n = this.ids.length;
      this.numbers.set(id, n);
      this.ids.push(id);
    }
    return n;
  }

  /** The number of `id`, or -1 when it has none. */
  find(id: string): number {
    return this.numbers.get(id) ?? -1;
  }

  idOf(n: number): string {
    return this.ids[n]!;
  }

  get size(): number {
    return this.ids.length;
  }
}
