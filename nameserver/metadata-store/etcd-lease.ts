// Keeping an etcd lease alive (a leader's, a member's presence): the refresh loop and the
// holder's own deadline, which comes before etcd's (see LeaseKeeper.validUntil).
import type { EtcdClient } from '../../src/clients/etcd-client.ts';

export interface Lease {
  /** 64-bit lease id, as a decimal string */
  id: string;
  ttlSeconds: number;
}

export interface LeaseKeeper {
  /** resolves (with why) once the lease is lost or may have been: stop acting as its holder */
  readonly lost: Promise<string>;
  /**
   * Until when (ms, Date.now() clock) the lease is certainly still alive: the send time of the
   * last refresh etcd acknowledged plus the TTL. etcd counts the TTL from when it received
   * that refresh, later than it was sent, so the holder's deadline comes first. Checked
   * synchronously before acting: a process stopped past it (SIGSTOP, a long GC pause) sees
   * it has lapsed on its first step after waking, before any timer runs.
   */
  validUntil(): number;
  /** once lost: 'expired' (etcd said so) or 'unanswered' (no refresh answered for a TTL: etcd unreachable or without quorum) */
  lostHow(): 'expired' | 'unanswered' | undefined;
  /** stops refreshing (the lease then expires after its TTL unless revoked) */
  stop(): void;
}

export interface KeepAliveOptions {
  /** refresh period, ms (default a third of the TTL) */
  intervalMs?: number;
  /** when the grant was sent: the lease's TTL may have started then, not later */
  grantSentAt?: number;
  /** told of every refresh and whether it worked (metrics) */
  onRenew?: (ok: boolean) => void;
}

/**
 * Refreshes the lease every third of its TTL. `lost` resolves when etcd says the lease is
 * gone, or when no refresh has succeeded for a whole TTL counted from when the last good
 * one was sent (so this side gives up no later than etcd does).
 */
export function keepLeaseAlive(client: EtcdClient, lease: Lease, o: KeepAliveOptions = {}): LeaseKeeper {
  const ttlMs = lease.ttlSeconds * 1000;
  const every = o.intervalMs ?? Math.max(100, Math.floor(ttlMs / 3));
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let resolveLost!: (why: string) => void;
  const lost = new Promise<string>((r) => (resolveLost = r));
  let goodSentAt = o.grantSentAt ?? Date.now();
  let how: 'expired' | 'unanswered' | undefined;
  const lose = (why: string, h: 'expired' | 'unanswered') => {
    if (stopped) return;
    how = h;
    stopped = true;
    if (timer) clearTimeout(timer);
    resolveLost(why);
  };
  const tick = async () => {
    if (stopped) return;
    const sentAt = Date.now();
    try {
      const ttl = await client.leaseKeepAliveOnce(lease.id);
      o.onRenew?.(ttl > 0);
      if (ttl <= 0) return lose(`lease ${lease.id} has expired`, 'expired');
      goodSentAt = sentAt;
    } catch (err) {
      o.onRenew?.(false);
      if (Date.now() - goodSentAt >= ttlMs) return lose(`lease ${lease.id} could not be refreshed for its TTL of ${lease.ttlSeconds} s: ${(err as Error).message}`, 'unanswered');
    }
    if (stopped) return;
    const left = goodSentAt + ttlMs - Date.now();
    timer = setTimeout(() => void tick(), Math.max(10, Math.min(every, left)));
  };
  timer = setTimeout(() => void tick(), every);
  return {
    lost,
    validUntil: () => (stopped ? 0 : goodSentAt + ttlMs),
    lostHow: () => how,
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
