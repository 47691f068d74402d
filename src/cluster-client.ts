// The cluster client: what origins, the admin CLI, migration and tests use to store and
// fetch files. Writes: assign at the name server, send the bytes to the block's primary,
// which forwards to the other replicas; success only when every replica appended, else the
// block is reported (it stops taking writes) and the write is retried on another block.
// Reads: the block's replicas come from a location cache; the replica tried first is chosen
// by a hashring keyed by fid, so each replica's page cache holds a distinct share; on an
// error or a checksum mismatch the next replica is tried. One instance per process is
// meant to be shared: it holds only the location cache.
import { createRequire } from 'node:module';
import { crc32c } from '@node-rs/crc32';
import { opt } from './config.ts';
import { UgcfsError, isErrorCode, isUgcfsError, type ErrorCode } from './errors.ts';
import { decodeFid } from './file-id.ts';
import { callJson, callRaw, expectOk, putBytes, type CallOptions, type RawResponse } from './http-client.ts';
import {
  DS_ROUTES,
  HEADERS,
  NS_ROUTES,
  isMetaText,
  type AssignResult,
  type BlockLocation,
  type ClusterStatus,
  type DeleteFeedPage,
  type DsRef,
  type LegacyMapping,
  type LegacyPut,
  type WriteResult,
} from './protocol.ts';
import { NAMESERVER_URL_OPTION } from './role-options.ts';
import { WriteCoalescer } from './write-coalescer.ts';
import { SECRET_HEADER } from './secret.ts';

interface HashRingLike {
  range(key: string, size?: number, unique?: boolean): string[];
}
// hashring ships no types; this is the one call we make.
const HashRing = createRequire(import.meta.url)('hashring') as new (servers: string[]) => HashRingLike;

export interface ClusterClientOptions {
  /** name server base URL */
  nameserver: string;
  /** the cluster secret (internal APIs) */
  secret?: string;
  /** sent as Bearer to admin views (status) when no secret is given */
  adminToken?: string;
  /** per-request timeout, ms (default 10 s) */
  timeoutMs?: number;
  /** how long a block location is trusted before it is fetched again, ms (default 10 s) */
  locationTtlMs?: number;
  /** blocks whose locations are cached (default 10,000) */
  locationCacheSize?: number;
  /** assign + write attempts before a write fails (default 4) */
  writeAttempts?: number;
  /** replica count to ask for; default: the name server's --replicas */
  replicas?: number;
  /** at most this many fids per assign round trip, queued for the next writes (default 100, the most an assign hands out; 1 = one assign per write) */
  assignBatch?: number;
  /**
   * at most this many concurrent writes to one block sent to its primary as one batch request
   * (default 32; 1 = one PUT per write). A write alone in its turn is always a plain PUT.
   */
  writeBatch?: number;
}

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

export interface WriteMeta {
  mime?: string;
  owner?: string;
  /** replica count for this file; default: the client's, else the name server's */
  replicas?: number;
  /**
   * Hears each attempt's fid before any byte is sent (a retry on another block calls it
   * again; the last call names the stored file). Lets a caller journal the fid first: data
   * servers finish a write even when the client dies waiting for the answer.
   */
  onAssigned?: (fid: string) => void;
}

export interface WrittenFile {
  fid: string;
  size: number;
  /** CRC32-C of the data */
  crc: number;
  /** where it was written; [0] was the primary */
  replicas: DsRef[];
}

export interface FileHead {
  fid: string;
  size: number;
  mime: string;
  owner: string;
  /** ms since the epoch */
  uploadTime: number;
  crc: number;
}

export interface ReadFile extends Omit<FileHead, 'size' | 'fid'> {
  data: Buffer;
}

export interface FileStat {
  fid: string;
  block: number;
  size: number;
  mime: string;
  /** ids of live data servers holding it */
  replicas: string[];
}

type Location = BlockLocation & { absent?: string[] };

interface CachedLocation {
  loc: Location;
  at: number;
  ring: HashRingLike | undefined;
}

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

/** Block states in which no copy is being made; any other state (repairing, moving...) is busy. */
const STEADY_STATES = new Set(['writable', 'readonly', 'sealed', 'failed']);
/** Busy states that end with a new replica a racing delete must also reach. */
const COPYING_STATES = new Set(['repairing', 'moving']);

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
}

/**
 * expectOk for needle reads: a HEAD answer has no body, so its error code comes from a
 * header; without it a replica lacking the block would look like a final "no such file".
 */
function needleOk(res: RawResponse): RawResponse {
  if (res.status >= 200 && res.status < 300) return res;
  const code = header(res.headers, HEADERS.errorCode);
  if (res.body.length === 0 && isErrorCode(code)) throw new UgcfsError(code);
  return expectOk(res);
}

export class ClusterClient {
  readonly nameserver: string;
  private readonly secret: string;
  private readonly adminToken: string;
  private readonly timeoutMs: number;
  private readonly ttlMs: number;
  private readonly cacheSize: number;
  private readonly attempts: number;
  private readonly replicas: number | undefined;
  private readonly locations = new Map<number, CachedLocation>();
  private readonly rings = new Map<string, HashRingLike>();
  private readonly assignBatch: number;
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

  constructor(opts: ClusterClientOptions) {
    this.nameserver = opts.nameserver.replace(/\/+$/, '');
    this.secret = opts.secret ?? '';
    this.adminToken = opts.adminToken ?? '';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.ttlMs = opts.locationTtlMs ?? 10_000;
    this.cacheSize = opts.locationCacheSize ?? 10_000;
    this.attempts = Math.max(1, opts.writeAttempts ?? 4);
    this.replicas = opts.replicas;
    this.assignBatch = Math.min(100, Math.max(1, opts.assignBatch ?? 100));
    this.coalescer = new WriteCoalescer({ maxRecords: Math.max(1, opts.writeBatch ?? 32), maxBytes: WRITE_BATCH_BYTES, maxInFlight: WRITE_BATCHES_IN_FLIGHT, secret: this.secret, timeoutMs: this.timeoutMs });
  }

  private call(extra: CallOptions = {}): CallOptions {
    return { secret: this.secret || undefined, timeoutMs: this.timeoutMs, ...extra };
  }

  private nsUrl(route: string, params: Record<string, string | number> = {}): string {
    let path = route;
    for (const [k, v] of Object.entries(params)) path = path.replace(`:${k}`, encodeURIComponent(String(v)));
    return this.nameserver + path;
  }

  // ---- writes ----

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
    const replicas = meta.replicas ?? this.replicas;
    let last: UgcfsError | undefined;
    for (let attempt = 0; attempt < this.attempts; attempt++) {
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
        this.remember({ block: a.block, replicas: a.replicas, writable: true, state: 'writable' });
        return { fid: a.fid, size: bytes.length, crc, replicas: a.replicas };
      } catch (err) {
        last = asUgcfs(err);
        if (!WRITE_RETRYABLE.has(last.code)) throw last;
        await this.reportWriteFailed(a.block, primary.id, last);
      }
    }
    throw new UgcfsError(last?.code === 'UGCFS_ERR_UNAVAILABLE' ? 'UGCFS_ERR_UNAVAILABLE' : 'UGCFS_ERR_REPLICATION', `write failed after ${this.attempts} attempts: ${last?.message ?? 'no attempt'}`, { cause: last });
  }

  /** One write as its own PUT to the primary. */
  private async putOne(primary: string, peers: string[], fid: string, bytes: Buffer, crc: number, mime: string, owner: string): Promise<WriteResult> {
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      [HEADERS.mime]: mime,
      [HEADERS.owner]: owner,
      // end-to-end check: the primary refuses bytes damaged on the way
      [HEADERS.crc]: String(crc),
    };
    if (peers.length > 0) headers[HEADERS.replicas] = peers.join(',');
    if (this.secret) headers[SECRET_HEADER] = this.secret;
    const res = expectOk(await putBytes(primary + DS_ROUTES.needle.replace(':fid', fid), bytes, headers, this.timeoutMs));
    const wr = JSON.parse(res.body.toString('utf8') || '{}') as Partial<WriteResult>;
    return { fid, size: wr.size ?? bytes.length, crc: typeof wr.crc === 'number' ? wr.crc : crc, ...(wr.existed ? { existed: true } : {}) };
  }

  /**
   * The next fid to write. With assignBatch > 1, fids come from the name server several at a
   * time (one block each batch) and are handed to writes from a short-lived queue: one
   * assign round trip serves several writes (each assign costs the name server far more CPU
   * than handing out one more fid). Concurrent writers share one refill.
   */
  private async nextAssign(replicas: number | undefined, size: number): Promise<AssignResult> {
    const body = (count: number) => ({ ...(replicas === undefined ? {} : { replicas }), ...(count > 1 ? { count } : {}) });
    if (this.assignBatch <= 1) return callJson<AssignResult>(this.nsUrl(NS_ROUTES.assign), this.call({ method: 'POST', body: body(1) }));
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
          const count = Math.max(1, Math.min(this.assignBatch, Math.floor(ASSIGN_BATCH_BYTES / Math.max(1, size))));
          const a = await callJson<AssignResult>(this.nsUrl(NS_ROUTES.assign), this.call({ method: 'POST', body: body(count) }));
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
    this.locations.delete(block);
    for (const [k, q] of this.prepared) this.prepared.set(k, q.filter((p) => p.block !== block));
    let report = this.reported.get(block);
    if (!report) {
      if (this.reported.size >= REPORTED_BLOCKS_KEPT) this.reported.clear();
      report = callJson(this.nsUrl(NS_ROUTES.blockWriteFailed, { id: block }), this.call({ method: 'POST', body: { dsId, reason: `${err.code}: ${err.message}`.slice(0, 200) } })).then(
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

  // ---- locations ----

  /** The block's live replicas, from cache unless stale or `refresh`. */
  async locate(block: number, refresh = false): Promise<Location> {
    const hit = this.locations.get(block);
    if (hit && !refresh && Date.now() - hit.at < this.ttlMs) return hit.loc;
    try {
      const loc = await callJson<Location>(this.nsUrl(NS_ROUTES.block, { id: block }), this.call());
      this.remember(loc);
      return loc;
    } catch (err) {
      // A block the name server never allocated holds no files: to a reader that is "no such file".
      if (isUgcfsError(err, 'UGCFS_ERR_BLOCK_NOT_FOUND')) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      throw err;
    }
  }

  private remember(loc: Location): void {
    this.locations.delete(loc.block);
    if (this.locations.size >= this.cacheSize) {
      const oldest = this.locations.keys().next().value;
      if (oldest !== undefined) this.locations.delete(oldest);
    }
    this.locations.set(loc.block, { loc, at: Date.now(), ring: undefined });
  }

  /** Rings are costly to build and many blocks share a replica set, so they are shared by set. */
  private ringFor(replicas: DsRef[]): HashRingLike {
    const key = replicas.map((r) => r.id).sort().join(',');
    let ring = this.rings.get(key);
    if (!ring) {
      if (this.rings.size >= 256) this.rings.clear();
      ring = new HashRing(replicas.map((r) => r.id));
      this.rings.set(key, ring);
    }
    return ring;
  }

  /** Replicas in the order to try for this fid: its hashring owner first. */
  private order(block: number, fid: string): DsRef[] {
    const c = this.locations.get(block);
    if (!c) return [];
    if (c.loc.replicas.length < 2) return [...c.loc.replicas];
    c.ring ??= this.ringFor(c.loc.replicas);
    const ids = c.ring.range(fid, c.loc.replicas.length, true);
    const byId = new Map(c.loc.replicas.map((r) => [r.id, r]));
    const out = ids.map((id) => byId.get(id)).filter((r): r is DsRef => r !== undefined);
    for (const r of c.loc.replicas) if (!out.includes(r)) out.push(r);
    return out;
  }

  /**
   * Runs `fn` against the block's replicas in hashring order until one answers. A definitive
   * "no such file" (from a replica holding the whole block) ends the search; a replica without
   * the block or with only part of it (a copy still being pulled), or no replicas at all,
   * refreshes the location once (and, right after a name-server restart, waits briefly for
   * block reports).
   */
  private async withReplica<T>(fid: string, fn: (ds: DsRef) => Promise<T>): Promise<T> {
    const f = decodeFid(fid);
    let last: UgcfsError | undefined;
    for (let round = 0; round < 4; round++) {
      if (round > 1) await sleep(150 * round);
      await this.locate(f.block, round > 0);
      const order = this.order(f.block, fid);
      let stale = order.length === 0;
      for (const ds of order) {
        try {
          return await fn(ds);
        } catch (err) {
          const e = asUgcfs(err);
          if (e.code === 'UGCFS_ERR_NOT_FOUND' || e.code === 'UGCFS_ERR_BAD_FID') throw e;
          if (e.code === 'UGCFS_ERR_BLOCK_NOT_FOUND' || e.code === 'UGCFS_ERR_UPSTREAM') stale = true;
          last = e;
        }
      }
      if (!stale) break;
    }
    throw last ?? new UgcfsError('UGCFS_ERR_UNAVAILABLE', `no live replica of block ${f.block}`);
  }

  // ---- reads ----

  /** The file's bytes and metadata; a wrong cookie or missing file is UGCFS_ERR_NOT_FOUND. */
  async read(fid: string): Promise<ReadFile> {
    return this.withReplica(fid, async (ds) => {
      const url = ds.url + DS_ROUTES.needle.replace(':fid', fid);
      // The data server leaves the pass over the data to us (we check it anyway, end to end).
      const first = await this.readChecked(fid, url, CLIENT_VERIFIES);
      if (first) return first;
      // A mismatch: ask again with the server checking every byte. A damaged record then
      // fails there (counted, logged, UGCFS_ERR_CHECKSUM, and we go on to the next replica);
      // bytes damaged on the way come back whole.
      const again = await this.readChecked(fid, url, {});
      if (again) return again;
      throw new UgcfsError('UGCFS_ERR_CHECKSUM', `replica ${ds.id} sent bytes whose CRC32-C does not match twice`);
    });
  }

  /** One GET of a needle; undefined when its bytes do not match the CRC it came with. */
  private async readChecked(fid: string, url: string, headers: Record<string, string>): Promise<ReadFile | undefined> {
    const res = needleOk(await callRaw(url, this.call({ headers })));
    const h = parseHead(fid, res.headers, res.body.length);
    const actual = crc32c(res.body);
    if (header(res.headers, HEADERS.crc) !== undefined && actual !== h.crc) return undefined;
    return { data: res.body, mime: h.mime, owner: h.owner, uploadTime: h.uploadTime, crc: actual };
  }

  /** Metadata without the bytes. */
  async head(fid: string): Promise<FileHead> {
    return this.withReplica(fid, async (ds) => {
      const res = needleOk(await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), this.call({ method: 'HEAD' })));
      return parseHead(fid, res.headers, undefined);
    });
  }

  /** Where the file lives: asks every live replica of its block whether it holds the file. */
  async stat(fid: string): Promise<FileStat> {
    const f = decodeFid(fid);
    const loc = await this.locate(f.block, true);
    const answers = await Promise.allSettled(
      loc.replicas.map(async (ds) => {
        const res = needleOk(await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), this.call({ method: 'HEAD' })));
        return { ds, head: parseHead(fid, res.headers, undefined) };
      }),
    );
    const ok = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    if (ok.length === 0) {
      const errs = answers.map((a) => asUgcfs((a as PromiseRejectedResult).reason));
      // A whole copy's "no such file" is final; replicas merely lacking the block are not.
      const other = errs.filter((e) => e.code !== 'UGCFS_ERR_BLOCK_NOT_FOUND');
      if (other.length === 0 || other.some((e) => e.code === 'UGCFS_ERR_NOT_FOUND')) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      throw other[0]!;
    }
    return { fid, block: f.block, size: ok[0]!.head.size, mime: ok[0]!.head.mime, replicas: ok.map((o) => o.ds.id) };
  }

  // ---- deletes ----

  /**
   * Deletes the file on every replica. Replicas that are down (or that the request did not
   * reach) are reported to the name server, which replays the delete when they return.
   * Throws UGCFS_ERR_NOT_FOUND when no replica had the file.
   */
  async delete(fid: string): Promise<void> {
    const f = decodeFid(fid);
    const loc = await this.locate(f.block, true);
    const deleteOn = (replicas: DsRef[]) =>
      Promise.allSettled(
        replicas.map(async (ds) => {
          const res = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), this.call({ method: 'DELETE' }));
          if (res.status === 404) return 'missing' as const;
          expectOk(res);
          return 'deleted' as const;
        }),
      );
    const results = await deleteOn(loc.replicas);
    const missed = [...(loc.absent ?? [])];
    let deleted = 0;
    let missing = 0;
    const tally = (rs: PromiseSettledResult<'missing' | 'deleted'>[], replicas: DsRef[]) =>
      rs.forEach((r, i) => {
        if (r.status === 'rejected') missed.push(replicas[i]!.id);
        else if (r.value === 'deleted') deleted++;
        else missing++;
      });
    tally(results, loc.replicas);
    // A copy finished (repair, move) while the deletes were on the wire was made before the
    // tombstone landed and is not in `loc`: look again and delete there too. While a copy is
    // still running, wait (briefly) for it to finish: a report that reaches the name server
    // just as the copy ends can miss the copy's list of racing deletes.
    let busy = !STEADY_STATES.has(loc.state);
    const reached = new Set(loc.replicas.map((r) => r.id));
    try {
      for (let round = 0; ; round++) {
        const fresh = await this.locate(f.block, true);
        const extra = fresh.replicas.filter((r) => !reached.has(r.id));
        for (const r of extra) reached.add(r.id);
        if (extra.length > 0) tally(await deleteOn(extra), extra);
        busy = !STEADY_STATES.has(fresh.state);
        if (!COPYING_STATES.has(fresh.state) || round >= 30) break;
        await sleep(100);
      }
    } catch {
      // The name server is unreachable: the report below fails too when one is needed.
    }
    // Every delete is reported: it goes into the name server's delete feed (origins purge
    // their caches from it), replicas that missed it get it replayed when they are back, and
    // a block being copied (repair, move) gets it replayed to the new copy. Only a delete
    // that needs no replay may survive an unreachable name server.
    try {
      await callJson(this.nsUrl(NS_ROUTES.deletes), this.call({ method: 'POST', body: { fid, dataservers: missed } }));
    } catch (err) {
      if (missed.length > 0 || busy) throw err;
    }
    this.locations.delete(f.block);
    if (deleted === 0 && missing > 0 && missed.length === 0) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
    if (deleted === 0 && missing === 0) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `no replica of block ${f.block} could be reached; the delete will be replayed`);
  }

  // ---- delete feed ----

  /** Deletes recorded after `after` (a sequence number); without it, just the current cursor. */
  async deletesSince(after?: number): Promise<DeleteFeedPage> {
    const q = after === undefined ? '' : `?after=${after}`;
    return callJson<DeleteFeedPage>(this.nsUrl(NS_ROUTES.deletes) + q, this.call());
  }

  /**
   * Polls the delete feed and calls `onDelete` with the fids deleted since the last poll
   * (from anywhere: `ugcfs rm`, other origins, migration). `onGap` is called when deletes
   * may have been missed (the feed was trimmed past our cursor, or reset): drop every
   * cached file then. Polling errors are retried quietly. Returns a stop function.
   */
  watchDeletes(o: { onDelete: (fids: string[]) => void | Promise<void>; onGap?: () => void | Promise<void>; intervalMs?: number }): () => void {
    let cursor: number | undefined;
    let feed: string | undefined;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const poll = async () => {
      try {
        if (cursor === undefined) {
          const head = await this.deletesSince();
          cursor = head.seq;
          feed = head.feed;
        } else {
          for (;;) {
            const page = await this.deletesSince(cursor);
            if (page.feed !== feed) {
              // A new feed (the name server's state was lost): whatever its numbers, our
              // cursor says nothing about what it missed.
              await o.onGap?.();
              const head = await this.deletesSince();
              cursor = head.seq;
              feed = head.feed;
              break;
            }
            if (!page.complete) await o.onGap?.();
            if (page.deletes.length > 0) await o.onDelete(page.deletes.map((d) => d.fid));
            const moved = page.seq !== cursor;
            cursor = page.seq;
            if (page.deletes.length === 0 || !moved) break;
          }
        }
      } catch {
        // name server down or restarting: try again next interval
      }
      if (!stopped) timer = setTimeout(() => void poll(), o.intervalMs ?? 1000).unref();
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }

  // ---- cluster ----

  async status(): Promise<ClusterStatus> {
    const headers: Record<string, string> = this.adminToken ? { authorization: `Bearer ${this.adminToken}` } : {};
    return callJson<ClusterStatus>(this.nsUrl(NS_ROUTES.status), this.call({ headers }));
  }

  // ---- legacy table (served by the name server's legacy module) ----

  /** The fid a legacy path is mapped to, or undefined. */
  async legacyGet(path: string): Promise<string | undefined> {
    return (await this.legacyLookup(path))?.fid;
  }

  /** The whole mapping row (fid, sha256, size...), or undefined. */
  async legacyLookup(path: string): Promise<LegacyMapping | undefined> {
    try {
      return await callJson<LegacyMapping>(`${this.nsUrl(NS_ROUTES.legacy)}?path=${encodeURIComponent(path)}`, this.call());
    } catch (err) {
      if (isUgcfsError(err, 'UGCFS_ERR_LEGACY_NOT_FOUND') || isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  async legacySet(path: string, fid: string, extra: Omit<LegacyPut, 'path' | 'fid'> = {}): Promise<LegacyMapping> {
    return callJson<LegacyMapping>(this.nsUrl(NS_ROUTES.legacy), this.call({ method: 'PUT', body: { ...extra, path, fid } }));
  }

  async legacyDelete(path: string): Promise<void> {
    const res = await callRaw(`${this.nsUrl(NS_ROUTES.legacy)}?path=${encodeURIComponent(path)}`, this.call({ method: 'DELETE' }));
    if (res.status !== 404) expectOk(res);
  }

  /** Drops cached locations (the HTTP agent is shared and needs no closing). */
  async close(): Promise<void> {
    this.locations.clear();
    this.prepared.clear();
  }
}

const CLIENT_VERIFIES: Readonly<Record<string, string>> = Object.freeze({ [HEADERS.verify]: 'client' });

function parseHead(fid: string, h: Record<string, string | string[] | undefined>, bodyLength: number | undefined): FileHead {
  const len = Number(header(h, 'content-length'));
  const owner = header(h, HEADERS.owner) ?? '';
  return {
    fid,
    size: bodyLength ?? (Number.isFinite(len) ? len : 0),
    mime: header(h, HEADERS.mime) ?? header(h, 'content-type') ?? 'application/octet-stream',
    owner,
    uploadTime: Number(header(h, HEADERS.uploadTime) ?? 0) || 0,
    crc: Number(header(h, HEADERS.crc) ?? 0) >>> 0,
  };
}

function asUgcfs(err: unknown): UgcfsError {
  if (err instanceof UgcfsError) return err;
  return new UgcfsError('UGCFS_ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
}

/** Options every admin command shares to reach the cluster (see cli/commands/status.ts). */
export const CLUSTER_CLIENT_OPTIONS = {
  ...NAMESERVER_URL_OPTION,
  clusterSecret: opt.string('', 'the cluster secret', { env: 'UGCFS_CLUSTER_SECRET', secret: true }),
  adminToken: opt.string('', 'admin token', { env: 'UGCFS_ADMIN_TOKEN', secret: true }),
  timeoutMs: opt.int(10_000, 'per-request timeout in ms', { min: 100 }),
};

export function clusterClientFromConfig(c: { nameserver: string; clusterSecret: string; adminToken: string; timeoutMs: number }): ClusterClient {
  return new ClusterClient({ nameserver: c.nameserver, secret: c.clusterSecret, adminToken: c.adminToken, timeoutMs: c.timeoutMs });
}
