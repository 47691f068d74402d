// The one client of the name server's API (NS_ROUTES): assignment, block locations, the
// reports clients and data servers send (write failures, deletes, heartbeats), the delete
// feed, the legacy table, status and operations. URLs are built here only; peer errors come
// back as UgcfsError with the name server's stable code.
//
// Every listed name server is used (a high-availability group): calls that change state go to
// the leader, reads to any that answers; which one, and when to try another, is
// nameserver-group.ts's. The heartbeat alone goes to the first listed server.
import type { Dispatcher } from 'undici';
import { splitUrls } from '../base/config.ts';
import { UgcfsError, errorFromBody, isUgcfsError, type ErrorCode } from '../base/errors.ts';
import { callJson, callRaw, expectOk, type CallOptions, type RawResponse } from './http-client.ts';
import { NS_FAILOVER_MS, NameserverGroup, isNoAnswer, type LeaderCallKind, type NameserverProbe } from './nameserver-group.ts';
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
  type LeaderStatus,
  type NameserverStatus,
  type Operation,
  type QuotaUsage,
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
/** The timeout of one GET /leader when looking for the leader or listing the name servers, ms. */
export const NS_PROBE_TIMEOUT_MS = 2000;

export { NS_FAILOVER_MS };

export interface NameserverClientOptions {
  /** name server base URLs, every member of the group (a string may be a comma-separated list) */
  nameservers: readonly string[] | string;
  /** the cluster secret (internal routes) */
  secret?: string;
  /** sent as Bearer to the admin views (status, data servers, operations) */
  adminToken?: string;
  /** per-call timeout, ms (default NS_TIMEOUT_MS) */
  timeoutMs?: number;
  /** how long a call only the leader may answer keeps looking for one, ms (default NS_FAILOVER_MS) */
  failoverMs?: number;
  /** the agent calls go through (http-client.ts agentFor: --tls-ca); default the shared one */
  dispatcher?: Dispatcher;
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
  /** every listed name server's base URL, in list order */
  readonly urls: readonly string[];
  private readonly secret: string;
  private readonly adminToken: string;
  private readonly timeoutMs: number;
  private readonly dispatcher: Dispatcher | undefined;
  private readonly group: NameserverGroup;

  constructor(o: NameserverClientOptions) {
    const list = [...new Set((typeof o.nameservers === 'string' ? [o.nameservers] : o.nameservers).flatMap(splitUrls))];
    if (list.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'no name server URL');
    this.urls = list;
    this.secret = o.secret ?? '';
    this.adminToken = o.adminToken ?? '';
    this.timeoutMs = o.timeoutMs ?? NS_TIMEOUT_MS;
    this.dispatcher = o.dispatcher;
    this.group = new NameserverGroup(list, { failoverMs: o.failoverMs ?? NS_FAILOVER_MS, probe: (base) => this.probe(base) });
  }

  /** The name server calls go to first: the leader when known, else the one that last answered. */
  get url(): string {
    return this.group.preferred;
  }

  // ---- writes

  /** `count` fids (1..100) in one writable block with `replicas` copies (default: the name server's). */
  assign(o: { count?: number; replicas?: number } = {}): Promise<AssignResult> {
    const body = { ...(o.replicas === undefined ? {} : { replicas: o.replicas }), ...(o.count !== undefined && o.count > 1 ? { count: o.count } : {}) };
    return this.lead('idempotent', (b) => callJson<AssignResult>(nsUrl(b, 'assign'), this.opts({ method: 'POST', body })));
  }

  /** A write to the block failed: it stops taking writes (sealed for a full block, else failed). */
  reportWriteFailed(block: number, r: { dsId?: string; code: ErrorCode; message?: string }): Promise<WriteFailedReply> {
    const body: WriteFailedReport = { code: r.code, reason: `${r.code}: ${r.message ?? ''}`.slice(0, 200) };
    if (r.dsId !== undefined) body.dsId = r.dsId;
    // Idempotent: the name server only ever moves a block out of `writable`.
    return this.lead('idempotent', (b) => callJson<WriteFailedReply>(nsUrl(b, 'blockWriteFailed', { id: block }), this.opts({ method: 'POST', body })));
  }

  // ---- reads

  /** The block's live replicas and state (UGCFS_ERR_BLOCK_NOT_FOUND when never allocated). */
  locate(block: number): Promise<BlockLocation> {
    return this.read((b) => callJson<BlockLocation>(nsUrl(b, 'block', { id: block }), this.opts()));
  }

  // ---- deletes

  /** A delete happened: recorded in the feed, and replayed to `missed` (data server ids) when they are back. */
  reportDelete(fid: string, missed: readonly string[]): Promise<{ ok: true; pending: number; seq: number }> {
    // Sent again after an ambiguous failure: pending replays are keyed by server and fid, and
    // a second feed entry only purges a cache twice; a lost report would lose the replay.
    return this.lead('idempotent', (b) => callJson(nsUrl(b, 'deletes'), this.opts({ method: 'POST', body: { fid, dataservers: missed } })));
  }

  /** Deletes recorded after `after` (a sequence number); without it, just the current cursor. */
  deletesSince(after?: number): Promise<DeleteFeedPage> {
    return this.read((b) => callJson<DeleteFeedPage>(nsUrl(b, 'deletes', {}, { after }), this.opts()));
  }

  // ---- data servers

  /**
   * One heartbeat. Throws ForeignClusterRefusal (with the name server's cluster id) when the
   * name server refuses this data server as another cluster's, else any failure typed.
   */
  async heartbeat(hb: Heartbeat, timeoutMs?: number): Promise<HeartbeatReply> {
    const res = await callRaw(nsUrl(this.urls[0]!, 'heartbeat'), this.opts({ method: 'POST', body: hb, ...(timeoutMs !== undefined ? { timeoutMs } : {}) }));
    const parsed = parseJson(res.body);
    if (res.status >= 200 && res.status < 300) return parsed as HeartbeatReply;
    const err = errorFromBody(res.status, parsed);
    if (!isUgcfsError(err, 'UGCFS_ERR_FOREIGN_CLUSTER')) throw err;
    const h = res.headers[HEADERS.cluster];
    throw new ForeignClusterRefusal(err.message, Array.isArray(h) ? h[0] : h);
  }

  dataservers(): Promise<DataserverStatus[]> {
    return this.read((b) => callJson<DataserverStatus[]>(nsUrl(b, 'dataservers'), this.admin()));
  }

  /** Forgets a dead data server (UGCFS_ERR_DATASERVER_NOT_FOUND when unknown). */
  async forgetDataserver(id: string): Promise<void> {
    // 'once': forgetting again after an ambiguous failure would answer "not found" to a success.
    expectOk(await this.lead('once', (b) => callRaw(nsUrl(b, 'dataserver', { id }), this.admin({ method: 'DELETE' })).then(refusal)));
  }

  // ---- cluster

  status(): Promise<ClusterStatus> {
    return this.read((b) => callJson<ClusterStatus>(nsUrl(b, 'status'), this.admin()));
  }

  /** Who leads, as the first name server that answers sees it (GET /leader). */
  leader(): Promise<LeaderStatus> {
    return this.read((b) => callJson<LeaderStatus>(nsUrl(b, 'leader'), this.admin()));
  }

  /** Every listed name server as its GET /leader answers (in parallel, short timeout); one that does not answer is alive: false. */
  async nameservers(): Promise<NameserverStatus[]> {
    return (await this.group.probeAll()).map(({ url, role, epoch, alive }) => ({ url, role, epoch, alive }));
  }

  /** Two operations of a kind may not run at once, and a second start may be refused: 'once'. */
  startOperation(body: Record<string, unknown>): Promise<Operation> {
    return this.lead('once', (b) => callJson<Operation>(nsUrl(b, 'ops'), this.admin({ method: 'POST', body })));
  }

  operation(id: string): Promise<Operation> {
    return this.read((b) => callJson<Operation>(nsUrl(b, 'op', { id }), this.admin()));
  }

  operations(): Promise<Operation[]> {
    return this.read((b) => callJson<Operation[]>(nsUrl(b, 'ops'), this.admin()));
  }

  cancelOperation(id: string): Promise<Operation> {
    return this.lead('once', (b) => callJson<Operation>(nsUrl(b, 'op', { id }), this.admin({ method: 'DELETE' })));
  }

  // ---- legacy table

  /** The whole mapping row (fid, sha256, size...), or undefined when the path is not mapped. */
  async legacyLookup(path: string): Promise<LegacyMapping | undefined> {
    try {
      return await this.read((b) => callJson<LegacyMapping>(nsUrl(b, 'legacy', {}, { path }), this.opts()));
    } catch (err) {
      if (isUgcfsError(err, 'UGCFS_ERR_LEGACY_NOT_FOUND') || isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) return undefined;
      throw err;
    }
  }

  legacySet(path: string, fid: string, extra: Omit<LegacyPut, 'path' | 'fid'> = {}): Promise<LegacyMapping> {
    return this.lead('idempotent', (b) => callJson<LegacyMapping>(nsUrl(b, 'legacy'), this.opts({ method: 'PUT', body: { ...extra, path, fid } })));
  }

  /** Removes a mapping; one that is not there is fine. */
  async legacyDelete(path: string): Promise<void> {
    const res = await this.lead('idempotent', (b) => callRaw(nsUrl(b, 'legacy', {}, { path }), this.opts({ method: 'DELETE' })).then(refusal));
    if (res.status !== 404) expectOk(res);
  }

  legacyList(o: { prefix?: string; after?: string; limit?: number } = {}): Promise<LegacyList> {
    return this.read((b) => callJson<LegacyList>(nsUrl(b, 'legacy', {}, { prefix: o.prefix, after: o.after, limit: o.limit }), this.opts()));
  }

  // ---- upload quotas

  /** Adds `delta` bytes to what `owner` stores; past `limit` it throws UGCFS_ERR_QUOTA_EXCEEDED and adds nothing. */
  quotaChange(owner: string, delta: number, limit?: number): Promise<QuotaUsage> {
    // 'once': a change sent twice would count twice.
    return this.lead('once', (b) => callJson<QuotaUsage>(nsUrl(b, 'quota', { id: owner }), this.opts({ method: 'POST', body: { delta, ...(limit === undefined ? {} : { limit }) } })));
  }

  // ---- plumbing

  private lead<T>(kind: LeaderCallKind, call: (base: string) => Promise<T>): Promise<T> {
    return this.group.lead(kind, call);
  }

  private read<T>(call: (base: string) => Promise<T>): Promise<T> {
    return this.group.read(call);
  }

  /** One server's GET /leader: never throws; no answer is alive: false, an older build without the route is role null. */
  private async probe(base: string): Promise<NameserverProbe> {
    const down: NameserverProbe = { url: base, role: null, epoch: 0, alive: false, leader: undefined, legacy: false };
    try {
      const s = await callJson<LeaderStatus>(nsUrl(base, 'leader'), this.admin({ timeoutMs: Math.min(this.timeoutMs, NS_PROBE_TIMEOUT_MS) }));
      const role = s?.role === 'leader' || s?.role === 'standby' ? s.role : null;
      const leader = role === 'leader' ? base : typeof s?.leader === 'string' ? s.leader.replace(/\/+$/, '') : undefined;
      return { ...down, alive: true, role, epoch: typeof s?.epoch === 'number' ? s.epoch : 0, leader };
    } catch (err) {
      if (isNoAnswer(err)) return down;
      const legacy = isUgcfsError(err, 'UGCFS_ERR_ROUTE_NOT_FOUND') || isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND');
      return { ...down, alive: true, legacy };
    }
  }

  private opts(extra: CallOptions = {}): CallOptions {
    return { secret: this.secret || undefined, timeoutMs: this.timeoutMs, dispatcher: this.dispatcher, ...extra };
  }

  /** Admin views take the admin token too (as Bearer), beside the secret. */
  private admin(extra: CallOptions = {}): CallOptions {
    const headers: Record<string, string> = this.adminToken ? { authorization: `Bearer ${this.adminToken}` } : {};
    return this.opts({ headers, ...extra });
  }
}

/** A raw answer that only the leader could give, thrown so the group follows it (a 421, a 503); any other is returned. */
function refusal(res: RawResponse): RawResponse {
  if (res.status === 421 || res.status === 503) expectOk(res);
  return res;
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    return undefined;
  }
}
