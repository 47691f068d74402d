// The one client of the name server's API (NS_ROUTES): assignment, block locations, the
// reports clients and data servers send (write failures, deletes, heartbeats), the delete
// feed, the legacy table, status and operations. URLs are built here only; peer errors come
// back as UgcfsError with the name server's stable code.
//
// `nameservers` is a list so that several name servers (HA) fit later; today the first is
// the one used.
import { UgcfsError, errorFromBody, isUgcfsError, type ErrorCode } from '../base/errors.ts';
import { callJson, callRaw, expectOk, type CallOptions } from './http-client.ts';
import {
  HEADERS,
  NS_ROUTES,
  type AssignResult,
  type BlockLocation,
  type ClusterStatus,
  type DataserverStatus,
  type DeleteFeedPage,
  type Heartbeat,
  type HeartbeatReply,
  type LegacyList,
  type LegacyMapping,
  type LegacyPut,
  type Operation,
  type WriteFailedReply,
  type WriteFailedReport,
} from '../wire/protocol.ts';

export type NsRoute = keyof typeof NS_ROUTES;

/** The one place a name-server URL is made. */
export function nsUrl(base: string, route: NsRoute, p: { id?: number | string } = {}, query?: Record<string, string | number | undefined>): string {
  let path: string = NS_ROUTES[route];
  if (p.id !== undefined) path = path.replace(':id', encodeURIComponent(String(p.id)));
  if (query) {
    const q = Object.entries(query).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${encodeURIComponent(String(v))}`]));
    if (q.length > 0) path += `?${q.join('&')}`;
  }
  return base + path;
}

/** The default timeout of a name-server call, ms. */
export const NS_TIMEOUT_MS = 10_000;

export interface NameserverClientOptions {
  /** name server base URLs; the first is used (a list, so several name servers fit later) */
  nameservers: readonly string[] | string;
  /** the cluster secret (internal routes) */
  secret?: string;
  /** sent as Bearer to the admin views (status, data servers, operations) */
  adminToken?: string;
  /** per-call timeout, ms (default NS_TIMEOUT_MS) */
  timeoutMs?: number;
}

/** A heartbeat refused because the data server belongs to another cluster (UGCFS_ERR_FOREIGN_CLUSTER). */
export class ForeignClusterRefusal extends UgcfsError {
  constructor(
    message: string,
    /** the name server's cluster id, from its answer's x-ugcfs-cluster header */
    readonly cluster: string | undefined,
  ) {
    super('UGCFS_ERR_FOREIGN_CLUSTER', message);
  }
}

export class NameserverClient {
  readonly nameservers: readonly string[];
  private readonly secret: string;
  private readonly adminToken: string;
  private readonly timeoutMs: number;

  constructor(o: NameserverClientOptions) {
    const list = (typeof o.nameservers === 'string' ? [o.nameservers] : [...o.nameservers]).map((u) => u.replace(/\/+$/, ''));
    if (list.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'no name server URL');
    this.nameservers = list;
    this.secret = o.secret ?? '';
    this.adminToken = o.adminToken ?? '';
    this.timeoutMs = o.timeoutMs ?? NS_TIMEOUT_MS;
  }

  /** The name server calls go to. */
  get url(): string {
    return this.nameservers[0]!;
  }

  // ---- writes

  /** `count` fids (1..100) in one writable block with `replicas` copies (default: the name server's). */
  assign(o: { count?: number; replicas?: number } = {}): Promise<AssignResult> {
    const body = { ...(o.replicas === undefined ? {} : { replicas: o.replicas }), ...(o.count !== undefined && o.count > 1 ? { count: o.count } : {}) };
    return callJson<AssignResult>(this.u('assign'), this.opts({ method: 'POST', body }));
  }

  /** A write to the block failed: it stops taking writes (sealed for a full block, else failed). */
  reportWriteFailed(block: number, r: { dsId?: string; code: ErrorCode; message?: string }): Promise<WriteFailedReply> {
    const body: WriteFailedReport = { code: r.code, reason: `${r.code}: ${r.message ?? ''}`.slice(0, 200) };
    if (r.dsId !== undefined) body.dsId = r.dsId;
    return callJson<WriteFailedReply>(this.u('blockWriteFailed', { id: block }), this.opts({ method: 'POST', body }));
  }

  // ---- reads

  /** The block's live replicas and state (UGCFS_ERR_BLOCK_NOT_FOUND when never allocated). */
  locate(block: number): Promise<BlockLocation> {
    return callJson<BlockLocation>(this.u('block', { id: block }), this.opts());
  }

  // ---- deletes

  /** A delete happened: recorded in the feed, and replayed to `missed` (data server ids) when they are back. */
  reportDelete(fid: string, missed: readonly string[]): Promise<{ ok: true; pending: number; seq: number }> {
    return callJson(this.u('deletes'), this.opts({ method: 'POST', body: { fid, dataservers: missed } }));
  }

  /** Deletes recorded after `after` (a sequence number); without it, just the current cursor. */
  deletesSince(after?: number): Promise<DeleteFeedPage> {
    return callJson<DeleteFeedPage>(this.u('deletes', {}, { after }), this.opts());
  }

  // ---- data servers

  /**
   * One heartbeat. Throws ForeignClusterRefusal (with the name server's cluster id) when the
   * name server refuses this data server as another cluster's, else any failure typed.
   */
  async heartbeat(hb: Heartbeat, timeoutMs?: number): Promise<HeartbeatReply> {
    const res = await callRaw(this.u('heartbeat'), this.opts({ method: 'POST', body: hb, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }));
    const parsed = parseJson(res.body);
    if (res.status >= 200 && res.status < 300) return parsed as HeartbeatReply;
    const err = errorFromBody(res.status, parsed);
    if (!isUgcfsError(err, 'UGCFS_ERR_FOREIGN_CLUSTER')) throw err;
    const h = res.headers[HEADERS.cluster];
    throw new ForeignClusterRefusal(err.message, Array.isArray(h) ? h[0] : h);
  }

  dataservers(): Promise<DataserverStatus[]> {
    return callJson<DataserverStatus[]>(this.u('dataservers'), this.admin());
  }

  /** Forgets a dead data server (UGCFS_ERR_DATASERVER_NOT_FOUND when unknown). */
  async forgetDataserver(id: string): Promise<void> {
    expectOk(await callRaw(this.u('dataserver', { id }), this.admin({ method: 'DELETE' })));
  }

  // ---- cluster

  status(): Promise<ClusterStatus> {
    return callJson<ClusterStatus>(this.u('status'), this.admin());
  }

  startOperation(body: Record<string, unknown>): Promise<Operation> {
    return callJson<Operation>(this.u('ops'), this.admin({ method: 'POST', body }));
  }

  operation(id: string): Promise<Operation> {
    return callJson<Operation>(this.u('op', { id }), this.admin());
  }

  operations(): Promise<Operation[]> {
    return callJson<Operation[]>(this.u('ops'), this.admin());
  }

  cancelOperation(id: string): Promise<Operation> {
    return callJson<Operation>(this.u('op', { id }), this.admin({ method: 'DELETE' }));
  }

  // ---- legacy table

  /** The whole mapping row (fid, sha256, size...), or undefined when the path is not mapped. */
  async legacyLookup(path: string): Promise<LegacyMapping | undefined> {
    try {
      return await callJson<LegacyMapping>(this.u('legacy', {}, { path }), this.opts());
    } catch (err) {
      if (isUgcfsError(err, 'UGCFS_ERR_LEGACY_NOT_FOUND') || isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  legacySet(path: string, fid: string, extra: Omit<LegacyPut, 'path' | 'fid'> = {}): Promise<LegacyMapping> {
    return callJson<LegacyMapping>(this.u('legacy'), this.opts({ method: 'PUT', body: { ...extra, path, fid } }));
  }

  /** Removes a mapping; one that is not there is fine. */
  async legacyDelete(path: string): Promise<void> {
    const res = await callRaw(this.u('legacy', {}, { path }), this.opts({ method: 'DELETE' }));
    if (res.status !== 404) expectOk(res);
  }

  legacyList(o: { prefix?: string; after?: string; limit?: number } = {}): Promise<LegacyList> {
    return callJson<LegacyList>(this.u('legacy', {}, { prefix: o.prefix, after: o.after, limit: o.limit }), this.opts());
  }

  // ---- plumbing

  private u(route: NsRoute, p: { id?: number | string } = {}, query?: Record<string, string | number | undefined>): string {
    return nsUrl(this.url, route, p, query);
  }

  private opts(extra: CallOptions = {}): CallOptions {
    return { secret: this.secret || undefined, timeoutMs: this.timeoutMs, ...extra };
  }

  /** Admin views take the admin token too (as Bearer), beside the secret. */
  private admin(extra: CallOptions = {}): CallOptions {
    const headers: Record<string, string> = this.adminToken ? { authorization: `Bearer ${this.adminToken}` } : {};
    return this.opts({ headers, ...extra });
  }
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
