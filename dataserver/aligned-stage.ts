// Page-aligned staging buffers for O_DIRECT appends (block-write-direct.ts). The kernel
// wants a direct write's memory aligned to the device's logical block; Node's Buffers are
// not (they come from malloc or an 8 KB slab), but a WebAssembly.Memory's backing store
// comes from the page allocator and starts on a page boundary. One memory per store, made
// on first use and cut into 1 MiB stages: V8 reserves a large stretch of address space for
// every wasm memory, so many small ones would be wasteful (and can fail under `ulimit -v`).

/** One staging buffer's size: a group commit larger than this is written in several pieces. */
export const STAGE_BYTES = 1024 * 1024;
const WASM_PAGE = 64 * 1024;

export class AlignedStages {
  private free: Buffer[] | undefined;

  /** @param count stages (concurrent direct appends beyond it are written buffered) */
  constructor(private readonly count = 8) {}

  /** A free staging buffer, or undefined when all are in use or none could be made. */
  take(): Buffer | undefined {
    if (this.free === undefined) this.free = make(this.count);
    return this.free.pop();
  }

  give(b: Buffer): void {
    this.free?.push(b);
  }
}

function make(count: number): Buffer[] {
  const pages = (count * STAGE_BYTES) / WASM_PAGE;
  let memory: WebAssembly.Memory;
  try {
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
  } catch {
    // No address space for it: appends stay buffered.
    return [];
  }
  return Array.from({ length: count }, (_, i) => Buffer.from(memory.buffer, i * STAGE_BYTES, STAGE_BYTES));
}
