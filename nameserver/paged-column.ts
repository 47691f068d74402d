// Columns indexed by block id, in pages of 64k ids allocated on first use. Block ids come
// from one sequence, so they are dense: a page costs its columns' bytes per id whether the
// ids are used or not, and no hash-map entry per block (docs/NAMESERVER.md, "Memory").
export const PAGE_BITS = 16;
export const PAGE_SIZE = 1 << PAGE_BITS;
const MASK = PAGE_SIZE - 1;

type TypedArray = Uint8Array | Uint16Array | Uint32Array | Int32Array | Float64Array;
type Ctor<T extends TypedArray> = new (n: number) => T;

export class PagedColumn<T extends TypedArray> {
  private readonly pages: Array<T | undefined> = [];

  constructor(
    private readonly ctor: Ctor<T>,
    private readonly fill = 0,
  ) {}

  get(id: number): number {
    const p = this.pages[id >>> PAGE_BITS];
    return p === undefined ? this.fill : p[id & MASK]!;
  }

  set(id: number, v: number): void {
    const i = id >>> PAGE_BITS;
    let p = this.pages[i];
    if (p === undefined) {
      if (v === this.fill) return;
      p = this.pages[i] = new this.ctor(PAGE_SIZE);
      if (this.fill !== 0) p.fill(this.fill);
    }
    p[id & MASK] = v;
  }

  /** Numbers of the pages allocated (each covers ids page << PAGE_BITS ...). */
  *pageNumbers(): Generator<number> {
    for (let i = 0; i < this.pages.length; i++) if (this.pages[i] !== undefined) yield i;
  }

  bytes(): number {
    let n = 0;
    for (const p of this.pages) if (p) n += p.byteLength;
    return n;
  }
}
