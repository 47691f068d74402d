// The connection half of the etcd client: the member list and which one to use, timeouts,
// and the retry rules (src/clients/etcd-client.ts's header has them in full). Idempotent calls go
// round the endpoints after any connection error, timeout or "unavailable" answer; calls
// that change state are retried only when the request provably never left, and otherwise
// fail with `ambiguous: true`.
import { Agent, request } from 'undici';
import { UgcfsError } from '../../base/errors.ts';
import type { EtcdClientOptions } from './etcd-types.ts';
import { EtcdError } from './etcd-types.ts';
import { NOT_SENT, answerError, describeError, errCode, isTimeout } from './etcd-wire.ts';

export interface CallOpts {
  idempotent: boolean;
  timeoutMs?: number;
  /** only this endpoint (maintenance calls aimed at one member) */
  endpoint?: string;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class EtcdTransport {
  readonly endpoints: readonly string[];
  /** how often a watch checks the member it is connected to, ms */
  readonly checkMs: number;
  readonly dispatcher: Agent;
  private readonly timeoutMs: number;
  private readonly avoidMs: number;
  private readonly avoidUntil = new Map<string, number>();
  private preferred = 0;
  private closed = false;

  constructor(o: EtcdClientOptions) {
    if (o.endpoints.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'etcd: no endpoint');
    this.endpoints = o.endpoints.map((e) => new URL(e).origin);
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.avoidMs = o.avoidMs ?? 2000;
    this.checkMs = o.watchCheckMs ?? 2000;
    this.dispatcher = new Agent({ connect: { timeout: o.connectTimeoutMs ?? 1000 }, keepAliveTimeout: 4000, keepAliveMaxTimeout: 10_000, pipelining: 1 });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Refuses further calls and closes the connections. */
  async close(): Promise<void> {
    this.closed = true;
    await this.dispatcher.close().catch(() => this.dispatcher.destroy());
  }

  /** Marks the transport closed without closing the connections yet (watches still end on them). */
  markClosed(): void {
    this.closed = true;
  }

  /** endpoints in the order to try them: the preferred first, avoided ones last */
  order(): string[] {
    const n = this.endpoints.length;
    const now = Date.now();
    const all = Array.from({ length: n }, (_, i) => this.endpoints[(this.preferred + i) % n]!);
    return [...all.filter((e) => (this.avoidUntil.get(e) ?? 0) <= now), ...all.filter((e) => (this.avoidUntil.get(e) ?? 0) > now)];
  }

  /** an endpoint failed: try the others first for a while */
  avoid(endpoint: string): void {
    this.avoidUntil.set(endpoint, Date.now() + this.avoidMs);
    if (this.endpoints[this.preferred] === endpoint) this.preferred = (this.preferred + 1) % this.endpoints.length;
  }

  /** True when the member answers /health with a leader and a quorum. */
  async health(endpoint: string, timeoutMs = 2000): Promise<boolean> {
    try {
      const res = await request(`${endpoint}/health`, { dispatcher: this.dispatcher, signal: AbortSignal.timeout(timeoutMs) });
      const body = (await res.body.json()) as { health?: string | boolean };
      return res.statusCode === 200 && String(body.health) === 'true';
    } catch {
      return false;
    }
  }

  /** One unary gateway call, with the endpoint failover and retry rules above. */
  async call(path: string, body: unknown, o: CallOpts): Promise<Record<string, unknown>> {
    if (this.closed) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'etcd client is closed');
    const payload = JSON.stringify(body);
    const candidates = o.endpoint ? [o.endpoint] : this.order();
    // Idempotent calls go round the endpoints twice; others try each at most once, and only
    // while their request provably never left.
    const attempts = o.idempotent ? candidates.length * 2 : candidates.length;
    let last: unknown;
    for (let i = 0; i < attempts; i++) {
      const endpoint = candidates[i % candidates.length]!;
      if (i === candidates.length) await sleep(100);
      let status: number;
      let text: string;
      try {
        const res = await request(`${endpoint}${path}`, {
          method: 'POST',
          body: payload,
          headers: { 'content-type': 'application/json' },
          dispatcher: this.dispatcher,
          signal: AbortSignal.timeout(o.timeoutMs ?? this.timeoutMs),
        });
        status = res.statusCode;
        text = await res.body.text();
      } catch (err) {
        const notSent = NOT_SENT.has(errCode(err) ?? '');
        this.avoid(endpoint);
        last = new EtcdError(isTimeout(err) ? 'UGCFS_ERR_TIMEOUT' : 'UGCFS_ERR_UNAVAILABLE', `etcd ${endpoint}${path}: ${describeError(err)}`, {
          kind: isTimeout(err) ? 'timeout' : 'unavailable',
          grpcCode: undefined,
          endpoint,
          ambiguous: !o.idempotent && !notSent,
        }, err);
        if (o.idempotent || notSent) continue;
        throw last;
      }
      let parsed: unknown;
      try {
        // a streamed answer (keep-alive) is JSON lines: the first one is the answer
        const line = text.split('\n').find((l) => l.trim() !== '') ?? '{}';
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (status === 200 && parsed && typeof parsed === 'object' && !('error' in parsed)) return parsed as Record<string, unknown>;
      const e = answerError(endpoint, status, parsed ?? { message: text.slice(0, 200) });
      if (e.etcd.kind === 'unavailable' || e.etcd.kind === 'timeout') {
        this.avoid(endpoint);
        if (o.idempotent) {
          last = e;
          continue;
        }
        e.etcd.ambiguous = true;
      }
      throw e;
    }
    throw last;
  }
}
