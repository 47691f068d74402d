// Page-aligned staging buffers for O_DIRECT appends (block-write-direct.ts). The kernel
// wants a direct write's memory aligned to the device's logical block; Node's Buffers are
// not (they come from malloc or an 8 KB slab), but a WebAssembly.Memory's backing store
// is allocated by the page allocator and so starts on a page boundary. A few are made on
// demand and reused; each one reserves address space, so their number is capped.

/** One staging buffer's size: a group commit larger than this is written in several pieces. */
export const STAGE_BYTES = 1024 * 1024;
const WASM_PAGE = 64 * 1024;

export class AlignedStages {
  private readonly free: Buffer[] = [];
  private made = 0;

  /** @param max most buffers ever made (concurrent direct appends beyond it go buffered) */
  constructor(private readonly max = 8) {}

  /** A free staging buffer, or undefined when all `max` are in use. */
  take(): Buffer | undefined {
    const b = this.free.pop();
    if (b) return b;
    if (this.made >= this.max) return undefined;
    this.made++;
    const pages = STAGE_BYTES / WASM_PAGE;
    return Buffer.from(new WebAssembly.Memory({ initial: pages, maximum: pages }).buffer);
  }

  give(b: Buffer): void {
    this.free.push(b);
  }
}
