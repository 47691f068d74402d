// Token buckets by key: a client address for variant misses, an upload owner for uploads.
// Each key may spend `burst` at once and earns `rate` per second back. The map is bounded
// (`maxKeys`): when full, the least recently used key is dropped.
import { UgcfsError } from '../src/base/errors.ts';

export interface RateLimitOptions {
  /** tokens earned per second; 0 turns the limiter off */
  rate: number;
  /** most tokens a key holds (its burst) */
  burst: number;
  /** most keys held at once */
  maxKeys?: number;
  /** what the refusal says (e.g. "variant misses from this address") */
  what: string;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  /** ms of the last refill */
  at: number;
}

export const DEFAULT_MAX_KEYS = 20_000;

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(private readonly o: RateLimitOptions) {
    this.maxKeys = o.maxKeys ?? DEFAULT_MAX_KEYS;
    this.now = o.now ?? Date.now;
  }

  get enabled(): boolean {
    return this.o.rate > 0;
  }

  /** keys held now (healthz) */
  get size(): number {
    return this.buckets.size;
  }

  /** Spends one token of `key`, or throws 429 UGCFS_ERR_RATE_LIMITED with Retry-After. */
  take(key: string): void {
    if (!this.enabled) return;
    const now = this.now();
    let b = this.buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.o.burst, at: now };
      this.makeRoom();
    } else {
      this.buckets.delete(key); // re-inserted below: Map order is least recently used first
      b.tokens = Math.min(this.o.burst, b.tokens + ((now - b.at) / 1000) * this.o.rate);
      b.at = now;
    }
    this.buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return;
    }
    const wait = Math.max(1, Math.ceil((1 - b.tokens) / this.o.rate));
    throw new UgcfsError('UGCFS_ERR_RATE_LIMITED', `too many ${this.o.what}; retry in ${wait} s`, {
      headers: { 'retry-after': String(wait), 'cache-control': 'no-store' },
    });
  }

  private makeRoom(): void {
    // The least recently used key goes; it only gets its burst back, and an idle one has
    // usually refilled anyway. O(1), so a flood of new keys costs no sweeps.
    while (this.buckets.size >= this.maxKeys) {
      const oldest = this.buckets.keys().next();
      if (oldest.done) break;
      this.buckets.delete(oldest.value);
    }
  }
}

/**
 * The key of a client address: IPv4 as is, IPv6 by its /64 (one host usually holds a whole
 * /64, so per-address buckets would be free to multiply), IPv4-mapped IPv6 as IPv4.
 */
export function clientKey(addr: string | undefined): string {
  if (!addr) return '?';
  if (addr.startsWith('::ffff:') && addr.includes('.')) return addr.slice(7);
  if (!addr.includes(':')) return addr;
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return groups.slice(0, 4).map((g) => g.toLowerCase().replace(/^0+(?=.)/, '')).join(':') + '::/64';
}
