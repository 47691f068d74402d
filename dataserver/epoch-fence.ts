// The highest name-server epoch this data server has seen, and the fence it makes: a leader's
// word (a command over HTTP, a heartbeat reply) whose epoch is lower comes from a name server
// that no longer leads, and is refused. A higher epoch is kept on disk (synced) before what
// came with it runs, so neither a SIGKILL nor a power cut lets an old leader back in.
//
// File layout, version 1 — <data>/epoch, ASCII, LF endings, always these three lines:
//
//   ugcfs-epoch 1                magic and version
//   epoch <n>                    the highest epoch seen, decimal, 0..2^53-1
//   crc <8 hex>                  CRC32-C of every byte before this line
//
// Golden bytes (test/dataserver/epoch-fence.test.ts; each line ends in \n), epoch 42:
//
//   ugcfs-epoch 1
//   epoch 42
//   crc 07bf1ded
//
// No file: epoch 0 (a single name server of today sends none, which counts as 0). Written
// atomically (epoch.tmp written and fsynced, renamed, the directory fsynced). A file that
// does not parse stops the data server at start (exit 2): a guess could let a deposed leader
// back in; an operator who removes it lets the next command or heartbeat set it again.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { UgcfsError } from '../src/base/errors.ts';
import { writeFileDurable } from '../src/base/durable-fs.ts';
import type { Metrics } from '../src/base/metrics.ts';

export const EPOCH_FILE = 'epoch';
export const EPOCH_FILE_VERSION = 1;

/** An epoch as the wire carries it: a non-negative integer JavaScript holds exactly. */
export function isEpoch(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

export function encodeEpochFile(epoch: number): Buffer {
  const body = `ugcfs-epoch ${EPOCH_FILE_VERSION}\nepoch ${epoch}\n`;
  const crc = crc32c(Buffer.from(body, 'latin1')).toString(16).padStart(8, '0');
  return Buffer.from(`${body}crc ${crc}\n`, 'latin1');
}

/** Parses the file; throws (with what is wrong) on anything but a well-formed version 1. */
export function decodeEpochFile(buf: Buffer): number {
  const text = buf.toString('latin1');
  const m = /^(ugcfs-epoch (\d+)\nepoch (\d{1,16})\n)crc ([0-9a-f]{8})\n$/.exec(text);
  if (!m) throw new Error(text.startsWith('ugcfs-epoch ') && !text.startsWith(`ugcfs-epoch ${EPOCH_FILE_VERSION}\n`) ? 'unknown version' : 'not three lines "ugcfs-epoch 1", "epoch <n>", "crc <8 hex>"');
  if (m[2] !== String(EPOCH_FILE_VERSION)) throw new Error('unknown version');
  if (crc32c(Buffer.from(m[1]!, 'latin1')) !== parseInt(m[4]!, 16)) throw new Error('crc mismatch (the file is damaged)');
  const epoch = Number(m[3]);
  if (!isEpoch(epoch)) throw new Error('epoch out of range');
  return epoch;
}

export type EpochSource = 'http' | 'heartbeat';

export class EpochFence {
  /** the highest epoch admitted, durable or on its way to disk */
  private seen: number;
  /** the highest epoch on disk */
  private durable: number;
  /** writes, one at a time in the order they were asked for */
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    epoch: number,
    private readonly metrics: Metrics | undefined,
  ) {
    this.seen = this.durable = epoch;
    metrics?.epochSeen.set(epoch);
  }

  /** Reads <dir>/epoch (absent: 0). A damaged file is bad usage (exit 2). */
  static async load(dir: string, metrics?: Metrics): Promise<EpochFence> {
    const file = join(dir, EPOCH_FILE);
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new EpochFence(dir, 0, metrics);
      throw err;
    }
    try {
      return new EpochFence(dir, decodeEpochFile(buf), metrics);
    } catch (err) {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${file} is not a valid epoch file (${(err as Error).message}); it keeps name servers that no longer lead from commanding this data server: restore it, or remove it to take the next leader's epoch`);
    }
  }

  /** The highest epoch seen (admitted; on disk, or about to be before anything it came with runs). */
  get highest(): number {
    return this.seen;
  }

  /**
   * Without waiting: 'stale' below the highest seen, 'ok' at it once it is on disk, 'new'
   * when `raise` must store it first.
   */
  check(epoch: number): 'stale' | 'ok' | 'new' {
    if (epoch < this.seen) return 'stale';
    return epoch <= this.durable ? 'ok' : 'new';
  }

  /** Counts one refused request or reply (ugcfs_fenced_requests_total). */
  refused(source: EpochSource): void {
    this.metrics?.fencedRequests.inc({ source });
  }

  /**
   * Admits a leader's epoch: false (counted) when it is stale, true once it is on disk. A
   * higher epoch is written, synced, before this resolves; the writes are serialised in the
   * order asked, so a lower epoch is never written after a higher one.
   */
  async admit(epoch: number, source: EpochSource): Promise<boolean> {
    const c = this.check(epoch);
    if (c === 'ok') return true;
    if (c === 'stale') {
      this.refused(source);
      return false;
    }
    return this.raise(epoch);
  }

  /** The 'new' case of check(): stores `epoch` (at least the highest seen), then resolves true. */
  raise(epoch: number): Promise<boolean> {
    this.seen = Math.max(this.seen, epoch);
    const run = this.chain.then(async () => {
      // Every write queued before this one was of an epoch no higher (check() refused lower
      // ones), so `durable` never goes down.
      if (epoch > this.durable) {
        await writeFileDurable(join(this.dir, EPOCH_FILE), encodeEpochFile(epoch));
        this.durable = epoch;
        this.metrics?.epochSeen.set(epoch);
      }
      return true;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
