// The lease half of the etcd client. Grant and revoke change state (not retried once sent);
// keep-alive and time-to-live are idempotent.
import type { EtcdTransport } from './etcd-transport.ts';
import { EtcdError } from './etcd-types.ts';
import { num } from './etcd-wire.ts';

export class EtcdLeases {
  constructor(private readonly t: EtcdTransport) {}

  /** Grants a lease; returns its id and TTL in seconds. */
  async grant(ttlSeconds: number): Promise<{ id: string; ttl: number }> {
    const w = await this.t.call('/v3/lease/grant', { TTL: String(ttlSeconds) }, { idempotent: false });
    return { id: String(w.ID), ttl: num(w.TTL) };
  }

  /** Refreshes a lease once; returns the TTL it now has (0: the lease has expired or never was). */
  async keepAliveOnce(id: string): Promise<number> {
    // A stream on the gateway: one request line in, one {"result": ...} line out.
    const w = await this.t.call('/v3/lease/keepalive', { ID: id }, { idempotent: true });
    const result = (w.result ?? w) as { TTL?: string };
    return num(result.TTL);
  }

  /** TTL left in seconds (-1 or 0: expired or unknown). */
  async timeToLive(id: string): Promise<number> {
    const w = await this.t.call('/v3/lease/timetolive', { ID: id }, { idempotent: true });
    return num(w.TTL);
  }

  /** Revokes a lease and deletes every key attached to it. An unknown lease is not an error. */
  async revoke(id: string): Promise<void> {
    try {
      await this.t.call('/v3/lease/revoke', { ID: id }, { idempotent: false });
    } catch (err) {
      if (err instanceof EtcdError && err.etcd.kind === 'lease-not-found') return;
      throw err;
    }
  }
}
