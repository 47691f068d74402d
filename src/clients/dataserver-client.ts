// The one client of a data server's internal API (DS_ROUTES): needles, needle batches,
// blocks, quarantine. Every caller — the cluster client, a primary forwarding to its
// replicas, a data server pulling a block, the name server creating, copying, checking and
// compacting blocks, replaying deletes — goes through it, so URLs (dataserver-wire.ts),
// timeouts (DS_TIMEOUTS), the cluster secret and error parsing (peer errors come back as
// UgcfsError with the peer's stable code) are each decided once.
//
// Liveness: a client given `isAlive` (the name server's registry) gives up a call to a
// server alive at its start as soon as that server is declared dead (UGCFS_ERR_UNAVAILABLE,
// "declared dead during the scrub of block 7"): a server that hangs without dying would
// otherwise hold the caller, and the claim that keeps a block's writes and repair off, for
// the whole timeout (up to 30 min). A pull watches its source too.
import type { Dispatcher } from 'undici';
import { request } from 'undici';
import { UgcfsError, errorFromBody } from '../base/errors.ts';
import { callJson, callRaw, expectOk, httpAgent, networkError, putBytes, sendBytes } from './http-client.ts';
import { BATCH_CONTENT_TYPE, parseBatchResults, type BatchItemResult } from '../wire/needle-batch.ts';
import { HEADERS, type BlockCreate, type BlockKeyState, type BlockReport, type CompactResult, type QuarantineListing, type ScrubResult, type WriteResult } from '../wire/protocol.ts';
import { SECRET_HEADER } from '../base/secret.ts';
import { DS_TIMEOUTS, dsUrl, needleOk, needlePutHeaders, parseNeedleHead, type DsCallKind, type DsTimeouts, type NeedleHead, type NeedlePutMeta } from './dataserver-wire.ts';

export { DS_TIMEOUTS, dsUrl, needlePutHeaders, type DsTimeouts, type NeedleHead, type NeedlePutMeta } from './dataserver-wire.ts';

/** A data server: its base URL, or its registry entry (an id lets the liveness watch follow it). */
export type DsPeer = string | { readonly id?: string; readonly url: string };

export interface DataserverClientOptions {
  /** the cluster secret, sent with every call */
  secret?: string;
  /** per-kind timeouts replacing DS_TIMEOUTS' */
  timeouts?: Partial<DsTimeouts>;
  /** needle and batch calls' timeout (a cluster client's --timeout-ms) */
  timeoutMs?: number;
  /** whether a server is alive now; given, calls to a server alive at their start end when it dies */
  isAlive?: (ds: { id: string; url: string }) => boolean;
  /** how often a call in progress checks liveness, ms (default 250) */
  livenessPollMs?: number;
  /**
   * Headers added to every call, asked for as it is sent: a name server's epoch
   * (HEADERS.epoch). It throws when the caller may no longer command (a name server that
   * stopped leading), and the call is not sent.
   */
  commandHeaders?: () => Record<string, string>;
  /** the agent calls go through (http-client.ts agentFor: --tls-ca); default the shared one */
  dispatcher?: Dispatcher;
}

/** What any one call may add. */
export interface DsCallOptions {
  /** this call's timeout instead of its kind's */
  timeoutMs?: number;
  /** abandons the call; its reason (a UgcfsError) is what the call throws */
  signal?: AbortSignal;
}

/** A needle GET's answer: the bytes, the metadata, and whether the server sent a CRC to check. */
export interface NeedleData {
  head: NeedleHead;
  data: Buffer;
  crcSent: boolean;
}

/** One round of GET /blocks/:id/data: the peer's generation and the body, to be read or dumped. */
export interface BlockDataStream {
  gen: string;
  body: Dispatcher.ResponseData['body'];
}

const base = (ds: DsPeer): string => (typeof ds === 'string' ? ds : ds.url);

export class DataserverClient {
  readonly secret: string;
  private readonly timeouts: DsTimeouts;
  private readonly isAlive: DataserverClientOptions['isAlive'];
  private readonly pollMs: number;
  private readonly commandHeaders: (() => Record<string, string>) | undefined;
  private readonly dispatcher: Dispatcher;

  constructor(o: DataserverClientOptions = {}) {
    this.commandHeaders = o.commandHeaders;
    this.dispatcher = o.dispatcher ?? httpAgent;
    this.secret = o.secret ?? '';
    const io = o.timeoutMs === undefined ? {} : { needle: o.timeoutMs, batch: o.timeoutMs };
    this.timeouts = { ...DS_TIMEOUTS, ...io, ...(o.timeouts ?? {}) };
    this.isAlive = o.isAlive;
    this.pollMs = o.livenessPollMs ?? 250;
  }

  timeout(kind: DsCallKind, call?: DsCallOptions): number {
    return call?.timeoutMs ?? this.timeouts[kind];
  }

  // ---- needles

  /** Stores one file on `ds` (a primary forwards it to `meta.replicas`). */
  async putNeedle(ds: DsPeer, fid: string, data: Buffer, meta: NeedlePutMeta, call?: DsCallOptions): Promise<WriteResult> {
    const url = dsUrl(base(ds), 'needle', { fid });
    const headers = this.commandHeaders ? { ...needlePutHeaders(meta, this.secret), ...this.commandHeaders() } : needlePutHeaders(meta, this.secret);
    // A write goes through the agent's dispatcher (putBytes: the write path's transport); a
    // repair copy, rare and watched, through request() so that it can be abandoned.
    const res = meta.repair
      ? await this.watched(ds, 'repair copy of', fid, call, (signal) => callRaw(url, { method: 'PUT', body: data, headers, timeoutMs: this.timeout('repairCopy', call), signal, dispatcher: this.dispatcher }))
      : await this.watched(ds, 'write of', fid, call, () => putBytes(url, data, headers, this.timeout('needle', call), this.dispatcher));
    const wr = parseJson<Partial<WriteResult>>(expectOk(res).body) ?? {};
    return { fid, size: wr.size ?? data.length, crc: typeof wr.crc === 'number' ? wr.crc : (meta.crc ?? 0), ...(wr.existed ? { existed: true } : {}) };
  }

  /** Several writes to one block in one request (a needle batch frame of `count` records). */
  async putNeedleBatch(ds: DsPeer, block: number, frame: Buffer, count: number, o: { replicas?: readonly string[]; requestId?: string; who?: string } = {}, call?: DsCallOptions): Promise<BatchItemResult[]> {
    const headers: Record<string, string> = { 'content-type': BATCH_CONTENT_TYPE };
    if (o.requestId !== undefined) headers['x-request-id'] = o.requestId;
    if (o.replicas !== undefined && o.replicas.length > 0) headers[HEADERS.replicas] = o.replicas.join(',');
    if (this.secret) headers[SECRET_HEADER] = this.secret;
    const res = await this.watched(ds, 'batch write to block', block, call, () => sendBytes('POST', dsUrl(base(ds), 'blockNeedles', { id: block }), frame, headers, this.timeout('batch', call), this.dispatcher));
    return parseBatchResults(expectOk(res).body, count, o.who ?? base(ds));
  }

  /**
   * A file's bytes. `clientVerifies`: the caller checks the data against the CRC itself, so
   * the server skips its own pass (dataserver/README.md, "Reads").
   */
  async getNeedle(ds: DsPeer, fid: string, o: { clientVerifies?: boolean; repair?: boolean } = {}, call?: DsCallOptions): Promise<NeedleData> {
    const headers = o.clientVerifies ? CLIENT_VERIFIES : undefined;
    const timeoutMs = this.timeout(o.repair ? 'repairCopy' : 'needle', call);
    const res = needleOk(await this.watched(ds, 'read of', fid, call, (signal) => callRaw(dsUrl(base(ds), 'needle', { fid }), { ...this.auth(headers), timeoutMs, signal })));
    return { head: parseNeedleHead(fid, res.headers, res.body.length), data: res.body, crcSent: res.headers[HEADERS.crc] !== undefined };
  }

  /** A file's metadata without its bytes. */
  async headNeedle(ds: DsPeer, fid: string, call?: DsCallOptions): Promise<NeedleHead> {
    const res = needleOk(await this.watched(ds, 'head of', fid, call, (signal) => callRaw(dsUrl(base(ds), 'needle', { fid }), { method: 'HEAD', ...this.auth(), timeoutMs: this.timeout('needle', call), signal })));
    return parseNeedleHead(fid, res.headers, undefined);
  }

  /**
   * Tombstones a file on `ds` (forwarded to `replicas` when given). 'missing' when the server
   * had no such file or block (404): the delete is in effect there.
   */
  async deleteNeedle(ds: DsPeer, fid: string, o: { replicas?: readonly string[]; repair?: boolean; kind?: 'needle' | 'deleteReplay' } = {}, call?: DsCallOptions): Promise<'deleted' | 'missing'> {
    const headers: Record<string, string> = {};
    if (o.repair) headers[HEADERS.repair] = '1';
    if (o.replicas !== undefined && o.replicas.length > 0) headers[HEADERS.replicas] = o.replicas.join(',');
    const timeoutMs = this.timeout(o.repair ? 'repairDelete' : (o.kind ?? 'needle'), call);
    const res = await this.watched(ds, 'delete of', fid, call, (signal) => callRaw(dsUrl(base(ds), 'needle', { fid }), { method: 'DELETE', ...this.auth(headers), timeoutMs, signal }));
    if (res.status === 404) return 'missing';
    expectOk(res);
    return 'deleted';
  }

  // ---- blocks

  /** Creates an empty block (200 when it exists empty; UGCFS_ERR_CONFLICT when it holds data). */
  createBlock(ds: DsPeer, block: number, body: BlockCreate, call?: DsCallOptions): Promise<BlockReport> {
    return this.json(ds, 'POST', 'block', block, body, 'blockCreate', 'creation of block', call);
  }

  /** The copy's BlockReport. */
  blockReport(ds: DsPeer, block: number, call?: DsCallOptions): Promise<BlockReport> {
    return this.json(ds, 'GET', 'block', block, undefined, 'blockReport', 'report of block', call);
  }

  /** Every block the server holds. */
  blockReports(ds: DsPeer, call?: DsCallOptions): Promise<BlockReport[]> {
    return this.watched(ds, 'block reports of', base(ds), call, (signal) => callJson<BlockReport[]>(dsUrl(base(ds), 'blocks'), { ...this.auth(), timeoutMs: this.timeout('blockReport', call), signal }));
  }

  /** Stops (or resumes) the copy taking writes. */
  setReadonly(ds: DsPeer, block: number, readonly: boolean, call?: DsCallOptions): Promise<BlockReport> {
    return this.json(ds, 'POST', 'blockReadonly', block, { readonly }, 'readonly', 'read-only switch of block', call);
  }

  /** Has `target` copy the block from `source` and index it; watches both ends. */
  pullBlock(target: DsPeer, block: number, source: DsPeer, call?: DsCallOptions): Promise<{ bytes?: number }> {
    return this.json(target, 'POST', 'blockPull', block, { from: base(source) }, 'pull', 'pull of block', call, source);
  }

  /** Checks every record's CRC; the digest compares copies. */
  scrub(ds: DsPeer, block: number, call?: DsCallOptions): Promise<ScrubResult> {
    return this.json(ds, 'POST', 'blockScrub', block, {}, 'scrub', 'scrub of block', call);
  }

  compact(ds: DsPeer, block: number, call?: DsCallOptions): Promise<CompactResult> {
    return this.json(ds, 'POST', 'blockCompact', block, {}, 'compact', 'compaction of block', call);
  }

  /** Every key the copy knows, live and deleted, sorted. */
  blockKeys(ds: DsPeer, block: number, call?: DsCallOptions): Promise<BlockKeyState[]> {
    return this.json(ds, 'GET', 'blockKeys', block, undefined, 'keys', 'key listing of block', call);
  }

  /** Removes the copy; one already gone is fine. */
  async deleteBlock(ds: DsPeer, block: number, call?: DsCallOptions): Promise<void> {
    const res = await this.watched(ds, 'removal of block', block, call, (signal) => callRaw(dsUrl(base(ds), 'block', { id: block }), { method: 'DELETE', ...this.auth(), timeoutMs: this.timeout('blockDelete', call), signal }));
    if (res.status === 404) return;
    expectOk(res);
  }

  /** The block's committed bytes from `from` to its current end, as a stream (a pull's round). */
  async blockData(ds: DsPeer, block: number, from: number, call?: DsCallOptions): Promise<BlockDataStream> {
    const url = dsUrl(base(ds), 'blockData', { id: block }, { from });
    const timeoutMs = this.timeout('blockData', call);
    let res: Dispatcher.ResponseData;
    try {
      res = await request(url, { method: 'GET', headers: { ...(this.secret ? { [SECRET_HEADER]: this.secret } : {}), ...(this.commandHeaders?.() ?? {}) }, dispatcher: this.dispatcher, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, signal: call?.signal });
    } catch (err) {
      throw networkError(url, err);
    }
    if (res.statusCode !== 200) throw errorFromBody(res.statusCode, parseJson(Buffer.from(await res.body.text(), 'utf8')));
    return { gen: String(res.headers[HEADERS.blockGen] ?? ''), body: res.body };
  }

  // ---- quarantine

  quarantineList(ds: DsPeer, call?: DsCallOptions): Promise<QuarantineListing> {
    return this.watched(ds, 'quarantine listing of', base(ds), call, (signal) => callJson<QuarantineListing>(dsUrl(base(ds), 'quarantine'), { ...this.auth(), timeoutMs: this.timeout('quarantine', call), signal }));
  }

  /** Removes one quarantined file for good (UGCFS_ERR_NOT_FOUND when there is none of that name). */
  async quarantineRemove(ds: DsPeer, name: string, call?: DsCallOptions): Promise<void> {
    await this.watched(ds, 'removal of quarantined', name, call, (signal) => callJson(dsUrl(base(ds), 'quarantineItem', { name }), { method: 'DELETE', ...this.auth(), timeoutMs: this.timeout('quarantine', call), signal }));
  }

  // ---- plumbing

  /** The secret, the command headers and the agent of one call, with the call's own headers. */
  private auth(headers?: Readonly<Record<string, string>>): { secret?: string; headers?: Record<string, string>; dispatcher: Dispatcher } {
    const extra = this.commandHeaders?.();
    const all = extra ? { ...(headers ?? {}), ...extra } : headers ? { ...headers } : undefined;
    const out: { secret?: string; headers?: Record<string, string>; dispatcher: Dispatcher } = { dispatcher: this.dispatcher };
    if (this.secret) out.secret = this.secret;
    if (all) out.headers = all;
    return out;
  }

  private json<T>(ds: DsPeer, method: 'GET' | 'POST', route: 'block' | 'blockReadonly' | 'blockPull' | 'blockScrub' | 'blockCompact' | 'blockKeys', block: number, body: unknown, kind: DsCallKind, what: string, call: DsCallOptions | undefined, also?: DsPeer): Promise<T> {
    const url = dsUrl(base(ds), route, { id: block });
    return this.watched(ds, what, block, call, (signal) => callJson<T>(url, { method, body, ...this.auth(), timeoutMs: this.timeout(kind, call), signal }), also);
  }

  /**
   * Runs one call, abandoned when `call.signal` aborts or, with `isAlive`, when `peer` (or
   * `also`) alive at the start is declared dead; the error then names the call as
   * "the <what> <subject>". Without either it is the call alone: the write path pays nothing.
   */
  private async watched<T>(peer: DsPeer, what: string, subject: string | number, call: DsCallOptions | undefined, fn: (signal?: AbortSignal) => Promise<T>, also?: DsPeer): Promise<T> {
    const outer = call?.signal;
    const isAlive = this.isAlive;
    if (isAlive === undefined && outer === undefined) return fn(undefined);
    const followed: Array<{ id: string; url: string }> = [];
    if (isAlive) {
      for (const p of also === undefined ? [peer] : [peer, also]) {
        if (typeof p !== 'string' && p.id !== undefined && isAlive({ id: p.id, url: p.url })) followed.push({ id: p.id, url: p.url });
      }
    }
    if (followed.length === 0 && outer === undefined) return fn(undefined);
    const stop = new AbortController();
    let dead: string | undefined;
    const onOuter = () => stop.abort(outer!.reason);
    if (outer?.aborted) stop.abort(outer.reason);
    else outer?.addEventListener('abort', onOuter, { once: true });
    const watch =
      followed.length > 0
        ? setInterval(() => {
            const gone = followed.find((p) => !isAlive!(p));
            if (gone && !stop.signal.aborted) {
              dead = gone.id;
              stop.abort();
            }
          }, this.pollMs)
        : undefined;
    try {
      return await fn(stop.signal);
    } catch (err) {
      if (dead !== undefined) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `data server ${dead} was declared dead during the ${what} ${subject}`);
      if (outer?.aborted) throw outer.reason instanceof UgcfsError ? outer.reason : new UgcfsError('UGCFS_ERR_UNAVAILABLE', `the ${what} ${subject} was abandoned`, { cause: err });
      throw err;
    } finally {
      clearInterval(watch);
      outer?.removeEventListener('abort', onOuter);
    }
  }
}

const CLIENT_VERIFIES: Readonly<Record<string, string>> = Object.freeze({ [HEADERS.verify]: 'client' });

function parseJson<T>(body: Buffer): T | undefined {
  try {
    const text = body.toString('utf8');
    return text === '' ? undefined : (JSON.parse(text) as T);
  } catch {
    return undefined;
  }
}
