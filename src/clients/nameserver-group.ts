// Which name server a call goes to, when several are listed (a high-availability group: one
// leader on etcd, the others warm standbys). nameserver-client.ts builds every request; this
// module only picks the base URL and decides when to try another.
//
// - Leader calls (anything that changes state) go to the leader this client knows. On a
//   network error or timeout, a 421 UGCFS_ERR_NOT_LEADER, or a 503 UGCFS_ERR_UNAVAILABLE
//   from a server that no longer leads (one shutting down), the leader is found again (the
//   421's `leader`, else GET /leader on every listed server) and the call retried with a
//   short backoff until the failover deadline. 503 UGCFS_ERR_NO_QUORUM and every other
//   answer are the caller's at once.
// - Calls made 'once' (not idempotent: starting an operation, forgetting a data server) are
//   retried only when the request surely did not run: a 421, a 503 from a server that no
//   longer leads, or a connection that was never made.
// - Reads go to the preferred server (the leader when known, else the last that answered)
//   and, on a network error or timeout, to each other listed server in turn. A 4xx is a real
//   answer; a 421 is followed to the leader.
// With one name server listed, only two answers are followed: a 421 naming a leader, and a 421
// with `leader` null (a group of one on etcd electing itself, e.g. just after a restart), which
// is retried with the same backoff until the failover deadline. Nothing else is retried and no
// extra request is made.
import { UgcfsError, isUgcfsError } from '../base/errors.ts';
import type { NameserverStatus } from '../wire/protocol.ts';
import { sleep } from './cluster-types.ts';

/** How long a leader call keeps looking for a leader, ms: writes resume within 10 s of a leader's death. */
export const NS_FAILOVER_MS = 10_000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 1000;

/** 'idempotent': safe to send twice (assign, reports, legacy PUT/DELETE); 'once': retried only when it surely did not run. */
export type LeaderCallKind = 'idempotent' | 'once';

/** One listed name server as GET /leader shows it, with the leader it names. */
export interface NameserverProbe extends NameserverStatus {
  /** the leader this server names (its own URL when it leads); undefined when unknown */
  leader: string | undefined;
  /** answered, but with no /leader route (a name server of an older build, alone: it leads) */
  legacy: boolean;
}

/** Socket errors raised before a request is sent: the call surely did not run. */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);

/** A network failure (no answer), as http-client's networkError makes them: they carry the cause. */
export function isNoAnswer(err: unknown): err is UgcfsError {
  return (isUgcfsError(err, 'UGCFS_ERR_UPSTREAM') || isUgcfsError(err, 'UGCFS_ERR_TIMEOUT')) && err.cause !== undefined;
}

function notSent(err: UgcfsError): boolean {
  const cause = err.cause as { code?: string; errors?: Array<{ code?: string }> } | undefined;
  return NOT_SENT.has(cause?.code ?? '') || (cause?.errors ?? []).some((e) => NOT_SENT.has(e.code ?? ''));
}

export class NameserverGroup {
  private leaderUrl: string | undefined;
  private readUrl: string;
  private finding: Promise<string | undefined> | undefined;

  constructor(
    readonly urls: readonly string[],
    private readonly o: { failoverMs: number; probe: (base: string) => Promise<NameserverProbe> },
  ) {
    this.readUrl = urls[0]!;
  }

  /** Where calls go first: the leader when known, else the server that last answered. */
  get preferred(): string {
    return this.leaderUrl ?? this.readUrl;
  }

  /** A read: the preferred server, then each other listed one on a network error or timeout. */
  async read<T>(call: (base: string) => Promise<T>): Promise<T> {
    const first = this.preferred;
    const order = [first, ...this.urls.filter((u) => u !== first)];
    let last: unknown;
    for (const base of order) {
      try {
        const r = await call(base);
        this.readUrl = base;
        return r;
      } catch (err) {
        if (isUgcfsError(err, 'UGCFS_ERR_NOT_LEADER')) return this.lead('idempotent', call, { base, err });
        if (this.urls.length === 1 || !isNoAnswer(err)) throw err;
        if (this.leaderUrl === base) this.leaderUrl = undefined;
        last = err;
      }
    }
    const e = last as UgcfsError;
    throw new UgcfsError(e.code, `no name server answered (${this.urls.join(', ')}): ${e.message}`, { cause: e });
  }

  /** A call only the leader may answer; see the header comment. `refused`: an answer already had (a 421 to a read). */
  async lead<T>(kind: LeaderCallKind, call: (base: string) => Promise<T>, refused?: { base: string; err: UgcfsError }): Promise<T> {
    const deadline = Date.now() + this.o.failoverMs;
    let base = refused?.base ?? this.preferred;
    let last: UgcfsError | undefined = refused?.err;
    let delay = BACKOFF_FIRST_MS;
    let graceUsed = false;
    for (;;) {
      if (last === undefined) {
        try {
          const r = await call(base);
          this.leaderUrl = base;
          this.readUrl = base;
          return r;
        } catch (err) {
          if (!(err instanceof UgcfsError)) throw err;
          last = err;
        }
      }
      const err: UgcfsError = last;
      const hint = err.code === 'UGCFS_ERR_NOT_LEADER' ? err.details?.leader?.replace(/\/+$/, '') : undefined;
      // One server listed: only a 421 naming another leader, or naming none (an election), is followed.
      const electing = err.code === 'UGCFS_ERR_NOT_LEADER' && hint === undefined;
      if (this.urls.length === 1 && !electing && (hint === undefined || hint === base)) throw noLeader(err);
      const retryable =
        err.code === 'UGCFS_ERR_NOT_LEADER' || err.code === 'UGCFS_ERR_UNAVAILABLE' || (isNoAnswer(err) && (kind === 'idempotent' || notSent(err)));
      if (!retryable) throw err;
      if (this.leaderUrl === base) this.leaderUrl = undefined;
      if (hint !== undefined && hint !== base && Date.now() < deadline) {
        base = hint;
        last = undefined;
        continue;
      }
      // Past the deadline only a timed-out attempt earns one more try, at a leader found now:
      // a hung leader costs a whole timeout, which may be the whole deadline.
      const grace: boolean = Date.now() >= deadline && err.code === 'UGCFS_ERR_TIMEOUT' && !graceUsed;
      if (Date.now() >= deadline && !grace) throw noLeader(err);
      graceUsed ||= grace;
      if (!grace) {
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
        delay = Math.min(delay * 2, BACKOFF_MAX_MS);
      }
      const found = await this.findLeader();
      if (found === undefined) {
        if (grace) throw noLeader(err);
        continue;
      }
      // The leader itself answered 503: a real answer (no writable block...), not a failover.
      if (err.code === 'UGCFS_ERR_UNAVAILABLE' && found === base) throw err;
      base = found;
      last = undefined;
    }
  }

  /**
   * The leader as the listed servers tell it (GET /leader on each, in parallel), or undefined
   * while none is known. Concurrent callers (every write in flight when a leader dies) share
   * one round of probes.
   */
  findLeader(): Promise<string | undefined> {
    this.finding ??= this.probeForLeader().finally(() => (this.finding = undefined));
    return this.finding;
  }

  private async probeForLeader(): Promise<string | undefined> {
    const probes = await this.probeAll();
    const byEpoch = (a: NameserverProbe, b: NameserverProbe) => b.epoch - a.epoch;
    const leading = probes.filter((p) => p.role === 'leader').sort(byEpoch)[0];
    const named = probes.filter((p) => p.leader !== undefined).sort(byEpoch)[0];
    const found = leading?.url ?? named?.leader ?? probes.find((p) => p.legacy)?.url;
    if (found !== undefined) this.leaderUrl = found;
    return found;
  }

  /** Every listed server's GET /leader, in list order. */
  probeAll(): Promise<NameserverProbe[]> {
    return Promise.all(this.urls.map((u) => this.o.probe(u)));
  }
}

/**
 * What a caller sees when no leader could be reached: a 421 is an answer between name
 * servers and clients, never passed on (an origin's uploader gets 503, to retry later).
 */
function noLeader(err: UgcfsError): UgcfsError {
  if (err.code !== 'UGCFS_ERR_NOT_LEADER') return err;
  return new UgcfsError('UGCFS_ERR_UNAVAILABLE', `no name server leads right now: ${err.message}`, { cause: err });
}
