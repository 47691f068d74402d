// The cluster client's writes: assign at the name server, send the bytes to the block's
// primary, which forwards to the other replicas; success only when every replica appended,
// else the block is reported (it stops taking writes) and the write is retried on another
// block. Fids come from the name server in batches (one block each), and concurrent writes
// to one block leave as one needle batch (src/clients/write-coalescer.ts).
import { crc32c } from '@node-rs/crc32';
import { UgcfsError, type ErrorCode } from '../base/errors.ts';
import { isMetaText, type AssignResult, type DsRef, type WriteResult } from '../wire/protocol.ts';
import { WriteCoalescer } from './write-coalescer.ts';
import { asUgcfs, sleep, type WriteMeta, type WrittenFile } from './cluster-types.ts';
import type { DataserverClient } from './dataserver-client.ts';
import type { LocationCache } from './location-cache.ts';
import type { NameserverClient } from './nameserver-client.ts';

/** a coalesced batch is sent once its data reaches this many bytes */
const WRITE_BATCH_BYTES = 4 * 1024 * 1024;
/**
 * Requests out at once per block; more writes wait for a slot and leave in the next batch.
 * With more in flight the batches are smaller, but they reach the primary while its previous
 * group commit is still writing, so its next one takes several batches at once, and every hop
 * stays busy. Replicas 2, 20 KB, 16 writers, on the bench writes section's cluster
 * (bench/lib/cluster.ts, 256 MiB blocks), adjacent runs: 3,045-3,406 writes/s with 2,
 * 3,465-4,158 with 3, 3,681-4,221 with 4, no better with 6 or 8.
 */
const WRITE_BATCHES_IN_FLIGHT = 4;

/** Errors worth another block: the file itself is fine, the place was not. */
const WRITE_RETRYABLE = new Set<ErrorCode>([
  'UGCFS_ERR_UPSTREAM',
  'UGCFS_ERR_TIMEOUT',
  'UGCFS_ERR_REPLICATION',
  'UGCFS_ERR_BLOCK_READONLY',
  'UGCFS_ERR_BLOCK_NOT_FOUND',
  'UGCFS_ERR_NO_SPACE',
  'UGCFS_ERR_UNAVAILABLE',
  'UGCFS_ERR_CHECKSUM',
  'UGCFS_ERR_DUPLICATE_KEY',
  'UGCFS_ERR_INTERNAL',
]);

/** an unused batch-assigned fid older than this is discarded */
const PREPARED_TTL_MS = 2000;
/** Reported blocks remembered before the list starts over (blocks never become writable again). */
const REPORTED_BLOCKS_KEPT = 10_000;
/**
 * A batch of fids is sized to store about this many bytes at the size of the write asking
 * for it: the name server stops assigning a block at 95 % full, and every fid already handed
 * out should still fit in what is left (small files: the whole assignBatch). 2 MiB fits the
 * last 5 % of any block from 40 MiB up (the default is 256 MiB); in a smaller block a batch
 * may outrun it, and the writes past the end are refused and retried in another block.
 */
const ASSIGN_BATCH_BYTES = 2 * 1024 * 1024;

export interface FileWriterDeps {
  ns: NameserverClient;
  ds: DataserverClient;
  locations: LocationCache;
  /** assign + write attempts before a write fails */
  attempts: number;
  /** replica count to ask for; undefined: the name server's */
  replicas: number | undefined;
  /** fids per assign round trip (1..100) */
  assignBatch: number;
  /** writes to one block per batch request (1 = one PUT each) */
  writeBatch: number;
}

export class FileWriter {
  /** fids assigned in batches, not yet used, by requested replica count (0 = the name server's) */
  private readonly prepared = new Map<number, Array<{ fid: string; block: number; replicas: DsRef[]; at: number }>>();
  private readonly refills = new Map<number, Promise<void>>();
  /**
   * Blocks this client has reported as failed to take a write, with the report (pending or
   * done). A block that fills refuses every write queued for it at once; one report is
   * enough (the name server only ever moves a block out of `writable`), and each one cost
   * the name server about a millisecond of CPU under load.
   */
  private readonly reported = new Map<number, Promise<void>>();
  private readonly coalescer: WriteCoalescer;

  constructor(private readonly d: FileWriterDeps) {
    this.coalescer = new WriteCoalescer({ maxRecords: Math.max(1, d.writeBatch), maxBytes: WRITE_BATCH_BYTES, maxInFlight: WRITE_BATCHES_IN_FLIGHT, dataservers: d.ds });
  }

  /** Stores a file on every replica of a block; resolves only when all have it. */
  async write(data: Uint8Array, meta: WriteMeta = {}): Promise<WrittenFile> {
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (bytes.length === 0) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'cannot store an empty file');
    const mime = meta.mime ?? 'application/octet-stream';
    const owner = meta.owner ?? '';
    // Refused here with the code a data server would answer, rather than after every attempt
    // (a header value undici will not send looks like an unreachable server).
    if (!isMetaText(mime)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'the media type must be at most 255 printable ASCII characters');
    if (!isMetaText(owner)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', 'the owner must be at most 255 printable ASCII characters');
    const crc = crc32c(bytes);
    const replicas = meta.replicas ?? this.d.replicas;
    let last: UgcfsError | undefined;
    for (let attempt = 0; attempt < this.d.attempts; attempt++) {
      if (attempt > 0) await sleep(25 * attempt);
      let a: AssignResult;
      try {
        a = await this.nextAssign(replicas, bytes.length);
      } catch (err) {
        last = asUgcfs(err);
        if (!WRITE_RETRYABLE.has(last.code)) throw last;
        continue;
      }
      const [primary, ...peers] = a.replicas;
      if (!primary || (replicas !== undefined && a.replicas.length < replicas)) {
        last = new UgcfsError('UGCFS_ERR_UNAVAILABLE', `block ${a.block} has no live replica`);
        continue;
      }
      meta.onAssigned?.(a.fid);
      const peerUrls = peers.map((p) => p.url);
      try {
        const wr = await this.coalescer.write({
          primary: primary.url,
          peers: peerUrls,
          block: a.block,
          // the primary sets the upload time (0), as for a PUT without x-ugcfs-upload-time
          record: { fid: a.fid, mime, owner, uploadTime: 0, crc, data: bytes },
          alone: () => this.putOne(primary.url, peerUrls, a.fid, bytes, crc, mime, owner),
        });
        if (wr.crc !== crc) throw new UgcfsError('UGCFS_ERR_CHECKSUM', `primary stored CRC ${wr.crc}, sent ${crc}`);
        this.d.locations.remember({ block: a.block, replicas: a.replicas, writable: true, state: 'writable' });
        return { fid: a.fid, size: bytes.length, crc, replicas: a.replicas };
      } catch (err) {
        last = asUgcfs(err);
        if (!WRITE_RETRYABLE.has(last.code)) throw last;
        await this.reportWriteFailed(a.block, primary.id, last);
      }
    }
    throw new UgcfsError(last?.code === 'UGCFS_ERR_UNAVAILABLE' ? 'UGCFS_ERR_UNAVAILABLE' : 'UGCFS_ERR_REPLICATION', `write failed after ${this.d.attempts} attempts: ${last?.message ?? 'no attempt'}`, { cause: last });
  }

  /** Forgets the fids assigned ahead. */
  clear(): void {
    this.prepared.clear();
  }

  /** One write as its own PUT to the primary; the CRC is the end-to-end check (the primary refuses bytes damaged on the way). */
  private putOne(primary: string, peers: string[], fid: string, bytes: Buffer, crc: number, mime: string, owner: string): Promise<WriteResult> {
    return this.d.ds.putNeedle(primary, fid, bytes, { mime, owner, crc, replicas: peers });
  }

  /**
   * The next fid to write. With assignBatch > 1, fids come from the name server several at a
   * time (one block each batch) and are handed to writes from a short-lived queue: one
   * assign round trip serves several writes (each assign costs the name server far more CPU
   * than handing out one more fid). Concurrent writers share one refill.
   */
  private async nextAssign(replicas: number | undefined, size: number): Promise<AssignResult> {
    if (this.d.assignBatch <= 1) return this.d.ns.assign({ replicas });
    const k = replicas ?? 0;
    for (;;) {
      const q = this.prepared.get(k);
      while (q && q.length > 0) {
        const p = q.shift()!;
        // Old fids may point at a block that filled up meanwhile; a fresh batch is cheap.
        if (Date.now() - p.at < PREPARED_TTL_MS) return { fid: p.fid, block: p.block, replicas: p.replicas };
      }
      let refill = this.refills.get(k);
      if (!refill) {
        refill = (async () => {
          const count = Math.max(1, Math.min(this.d.assignBatch, Math.floor(ASSIGN_BATCH_BYTES / Math.max(1, size))));
          const a = await this.d.ns.assign({ replicas, count });
          const at = Date.now();
          const list = (a.fids ?? [a.fid]).map((fid) => ({ fid, block: a.block, replicas: a.replicas, at }));
          this.prepared.set(k, [...(this.prepared.get(k) ?? []), ...list]);
        })().finally(() => this.refills.delete(k));
        this.refills.set(k, refill);
      }
      await refill;
    }
  }

  /** Tells the name server, once per block, and waits until it knows, so the retry's assign avoids the block. */
  private async reportWriteFailed(block: number, dsId: string, err: UgcfsError): Promise<void> {
    this.d.locations.forget(block);
    for (const [k, q] of this.prepared) this.prepared.set(k, q.filter((p) => p.block !== block));
    let report = this.reported.get(block);
    if (!report) {
      if (this.reported.size >= REPORTED_BLOCKS_KEPT) this.reported.clear();
      report = this.d.ns.reportWriteFailed(block, { dsId, code: err.code, message: err.message }).then(
        () => undefined,
        () => {
          // The name server may be the thing that is down; the next assign will tell, and the
          // next failure on this block reports again.
          this.reported.delete(block);
        },
      );
      this.reported.set(block, report);
    }
    await report;
  }
}
