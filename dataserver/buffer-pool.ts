// Reusable buffers for the hot routes: the records the read route answers with, and the
// request bodies the write routes receive. A fresh Buffer per request is external memory:
// 20 KB reads at 25k/s are 500 MB/s of it, and V8 answers external-memory growth with
// scavenges and full mark-compacts whose cost grows with the server's whole heap (profiled:
// GC rose from ~1 % to 13-17 % of the data server's main thread under reads, in phases, and
// the read rate with it swung between 27k and 15k/s). A buffer from the pool is no new
// external memory.
//
// Each user gives a buffer back only once nothing can read or write it any more: the read
// route on its response's 'finish' (node emits it once the last byte was handed to the
// kernel, and never when the socket failed), the write routes once the request is answered
// (needle-write-route.ts). One that never comes back is simply left to the collector.

/** The smallest class; smaller records share it (a record is at least its header). */
const MIN_CLASS = 1024;
/** Marks the ArrayBuffers a pool made: node's shared 8 KB allocation slab must never enter one. */
const OWNER = Symbol('ugcfs.bufferPool');

type Owned = ArrayBuffer & { [OWNER]?: BufferPool };

export class BufferPool {
  /** free buffers per size class; class i holds buffers of MIN_CLASS << i bytes */
  private readonly free: ArrayBuffer[][] = [];
  private pooledBytes = 0;
  private readonly maxClass: number;

  /**
   * @param capBytes most bytes held while idle (0: every take allocates, the pool is off)
   * @param maxBuffer largest buffer kept; longer ones are allocated on their own
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
