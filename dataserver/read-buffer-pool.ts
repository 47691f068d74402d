// Reusable buffers for the hot read route. A fresh Buffer per read is 20 KB of external
// memory per request: at 25k reads/s that is 500 MB/s, and V8 answers external-memory growth
// with full mark-compacts whose cost grows with the server's whole heap (profiled: GC rose
// from ~1 % to 13-17 % of the data server's main thread in phases, and the read rate with it
// swung between 27k and 15k/s). A read served from the pool allocates no external memory.
//
// A buffer comes back only after its response's 'finish' — node emits it once the last byte
// was handed to the kernel, and never when the socket failed — so a buffer still queued on a
// socket is never reused; one that never comes back is simply left to the collector.

/** The smallest class; smaller records share it (a record is at least its header). */
const MIN_CLASS = 1024;
/** Marks the ArrayBuffers a pool made: node's shared 8 KB allocation slab must never enter one. */
const OWNER = Symbol('ugcfs.readBufferPool');

type Owned = ArrayBuffer & { [OWNER]?: ReadBufferPool };

export class ReadBufferPool {
  /** free buffers per size class; class i holds buffers of MIN_CLASS << i bytes */
  private readonly free: ArrayBuffer[][] = [];
  private pooledBytes = 0;
  private readonly maxClass: number;

  /**
   * @param capBytes most bytes held while idle (0: every read allocates, the pool is off)
   * @param maxBuffer largest buffer kept; longer records allocate their own, as before
   */
  constructor(
    private readonly capBytes: number,
    maxBuffer = 1024 * 1024,
  ) {
    this.maxClass = capBytes > 0 ? Math.max(MIN_CLASS, Math.min(maxBuffer, floorPow2(capBytes))) : 0;
  }

  /** A buffer of exactly `length` bytes, backed by a pooled (or new, dedicated) ArrayBuffer. */
  take(length: number): Buffer {
    const size = classSize(length);
    if (size > this.maxClass) return Buffer.allocUnsafeSlow(length);
    const ab = this.free[classIndex(size)]?.pop();
    if (ab) {
      this.pooledBytes -= size;
      return Buffer.from(ab, 0, length);
    }
    const fresh: Owned = new ArrayBuffer(size);
    fresh[OWNER] = this;
    return Buffer.from(fresh, 0, length);
  }

  /** Hands back a buffer take() gave out, once nothing can read or write it any more. */
  give(buf: Buffer): void {
    const ab = buf.buffer as Owned;
    const size = ab.byteLength;
    if (ab[OWNER] !== this || this.pooledBytes + size > this.capBytes) return;
    (this.free[classIndex(size)] ??= []).push(ab);
    this.pooledBytes += size;
  }

  /** bytes held idle, for the gauge */
  get idleBytes(): number {
    return this.pooledBytes;
  }
}

function classSize(length: number): number {
  return length <= MIN_CLASS ? MIN_CLASS : 2 ** Math.ceil(Math.log2(length));
}

function classIndex(size: number): number {
  return Math.log2(size / MIN_CLASS);
}

function floorPow2(n: number): number {
  return 2 ** Math.floor(Math.log2(n));
}
