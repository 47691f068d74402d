// Whether a record read may be a synchronous pread on the event loop instead of a trip
// through libuv's thread pool. A read the page cache answers is a memory copy of a few
// microseconds; handing it to the pool costs the main thread more than that (queueing, waking
// a pool thread, the completion's wake-up and callback: ~11 µs per 20 KB read on the bench
// machine, where the data server's whole read was ~31 µs). Profiled and measured: 20 KB reads
// cost a third less CPU done in place (dataserver/README.md, "Reads in place").
//
// The price is that a read the page cache cannot answer blocks the loop, and every request
// on it, for a disk read. Node cannot ask "only if cached" (no preadv2 RWF_NOWAIT), so each
// read in place is timed, and a slow one is checked against the process's count of reads from
// storage (getrusage's ru_inblock): slow *and* reading from storage is a disk; slow without
// is the thread having been descheduled (rare enough on the bench VM to pause nothing in 64 s
// of wrk, but a pause counter should mean a disk on any machine). Two slow reads in a row,
// the second seen reading from storage, send every read back to the pool for a pause, after
// which reads in place are tried again; only the read after a slow one is bracketed by the
// two counter reads (~0.6 µs each), so the common path pays nothing. Storage the kernel does
// not count (some network filesystems) pauses on a longer run of slow reads alone. Large
// records always go to the pool (their copy alone would hold the loop, and they are the
// likeliest to be cold).

export interface SyncReadGateOptions {
  /** records longer than this always go to the thread pool */
  maxBytes: number;
  /** a read in place slower than this (plus `usPerKiB` per KiB read) counts as a disk read */
  slowUs: number;
  usPerKiB: number;
  /** slow reads in a row that pause reads in place, the last one seen reading from storage */
  slowInARow: number;
  /** slow reads in a row that pause reads in place without any seen reading from storage */
  slowInARowUnseen: number;
  /** how long reads stay in the thread pool after that */
  pauseMs: number;
}

/**
 * From the page cache on the bench VM (readSync, 2,000 reads each, the machine busy): 20 KB in
 * 2.7 µs (p99 20 µs), 256 KiB in 9 µs (p99 18 µs) — but single reads of up to 1.9 ms when the
 * thread was descheduled, hence two in a row. The bound (50 µs + 1 µs per KiB: 70 µs for
 * 20 KB) sits under an NVMe read (~80-100 µs): were cold NVMe reads allowed in place, they
 * would queue one by one on the loop instead of running side by side in the pool.
 */
export const SYNC_READ_DEFAULTS: Readonly<SyncReadGateOptions> = Object.freeze({ maxBytes: 256 * 1024, slowUs: 50, usPerKiB: 1, slowInARow: 2, slowInARowUnseen: 8, pauseMs: 2000 });

/** 512-byte blocks this process has read from storage so far (all threads): page-cache hits do not count. */
export const storageReadBlocks = (): number => process.resourceUsage().fsRead;

export class SyncReadGate {
  /** performance.now() before which reads go to the pool; 0 when not paused */
  private pausedUntil = 0;
  private slowRun = 0;
  /** the storage-read count when the current read in place began; -1 when not bracketed */
  private storageAtStart = -1;

  constructor(
    private readonly o: SyncReadGateOptions = SYNC_READ_DEFAULTS,
    /** told once per pause, with the slow read's duration (metrics and the log) */
    private readonly onPause: (us: number, length: number) => void = () => {},
    /** reads from storage so far, any unit; only its movement across a read matters */
    private readonly storageReads: () => number = storageReadBlocks,
  ) {}

  /** May a read of `length` bytes starting now (performance.now()) be done in place? */
  allows(length: number, now: number): boolean {
    if (length > this.o.maxBytes) return false;
    if (this.pausedUntil !== 0) {
      if (now < this.pausedUntil) return false;
      this.pausedUntil = 0;
    }
    // Right after a slow read, bracket the next one: was a slow one a disk?
    this.storageAtStart = this.slowRun > 0 ? this.storageReads() : -1;
    return true;
  }

  /** A read in place of `length` bytes took from `started` to `ended` (performance.now(), ms). */
  took(length: number, started: number, ended: number): void {
    const us = (ended - started) * 1000;
    const bracketed = this.storageAtStart >= 0;
    const fromStorage = bracketed && this.storageReads() !== this.storageAtStart;
    this.storageAtStart = -1;
    if (us <= this.o.slowUs + (length / 1024) * this.o.usPerKiB) {
      this.slowRun = 0;
      return;
    }
    this.slowRun++;
    if (fromStorage ? this.slowRun < this.o.slowInARow : this.slowRun < this.o.slowInARowUnseen) return;
    this.slowRun = 0;
    this.pausedUntil = ended + this.o.pauseMs;
    this.onPause(us, length);
  }

  get paused(): boolean {
    return this.pausedUntil !== 0;
  }
}
