// The token buckets, client keys and per-file variant budget behind the origin's flood
// control (origin/rate-limit.ts, origin/variant-budget.ts), on a fake clock.
import { describe, expect, it } from 'vitest';
import { isUgcfsError } from '../../src/base/errors.ts';
import { clientKey, RateLimiter } from '../../origin/rate-limit.ts';
import { VariantBudget } from '../../origin/variant-budget.ts';
import { verifySignature, signUrl } from '../../origin/url-signature.ts';
import { parseTarget } from '../../origin/variant-url.ts';

function refusal(fn: () => void): { code: string; headers: Record<string, string> | undefined } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!isUgcfsError(err)) throw err;
    return { code: err.code, headers: err.headers };
  }
}

describe('RateLimiter', () => {
  it('lets a burst through, then refuses with Retry-After until tokens come back', () => {
    let now = 0;
    const l = new RateLimiter({ rate: 2, burst: 3, what: 'things', now: () => now });
    for (let i = 0; i < 3; i++) expect(refusal(() => l.take('a'))).toBeUndefined();
    const r = refusal(() => l.take('a'));
    expect(r?.code).toBe('UGCFS_ERR_RATE_LIMITED');
    expect(r?.headers?.['retry-after']).toBe('1');
    expect(refusal(() => l.take('b'))).toBeUndefined(); // another key, its own bucket
    now += 500; // one token back at 2/s
    expect(refusal(() => l.take('a'))).toBeUndefined();
    expect(refusal(() => l.take('a'))?.code).toBe('UGCFS_ERR_RATE_LIMITED');
  });

  it('holds at most maxKeys buckets, dropping the least recently used', () => {
    const l = new RateLimiter({ rate: 1, burst: 1, maxKeys: 100, what: 'things', now: () => 0 });
    for (let i = 0; i < 10_000; i++) l.take(`k${i}`);
    expect(l.size).toBe(100);
  });

  it('is off at rate 0', () => {
    const l = new RateLimiter({ rate: 0, burst: 1, what: 'things' });
    for (let i = 0; i < 100; i++) l.take('a');
    expect(l.size).toBe(0);
  });
});

describe('clientKey', () => {
  it('keys IPv4 by address and IPv6 by its /64', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:0DB8::1')).toBe('2001:db8:0:0::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
  });
});

describe('VariantBudget', () => {
  it('caps new variants per file, never those already made, and forgets old files', () => {
    const b = new VariantBudget(2, 3);
    for (const k of ['a', 'b']) {
      b.check('f', k);
      b.record('f', k);
    }
    expect(refusal(() => b.check('f', 'c'))?.code).toBe('UGCFS_ERR_TOO_MANY_VARIANTS');
    expect(refusal(() => b.check('f', 'a'))).toBeUndefined();
    expect(refusal(() => b.check('g', 'c'))).toBeUndefined();
    for (const f of ['g', 'h', 'i']) b.record(f, 'x');
    expect(b.size).toBe(3);
  });
});

describe('signed URLs with exp', () => {
  it('cover exp and refuse it once passed', () => {
    const keys = ['k'.repeat(40)];
    const url = signUrl(keys, '/x.jpg?w=10', { exp: 1000 });
    const t = parseTarget(url);
    expect(t.exp).toBe(1000);
    expect(refusal(() => verifySignature(keys, t.signed, t.sig, t.exp, 999_000))).toBeUndefined();
    expect(refusal(() => verifySignature(keys, t.signed, t.sig, t.exp, 1_000_000))?.code).toBe('UGCFS_ERR_BAD_SIGNATURE');
    const moved = parseTarget(url.replace('exp=1000', 'exp=2000'));
    expect(refusal(() => verifySignature(keys, moved.signed, moved.sig, moved.exp, 0))?.code).toBe('UGCFS_ERR_BAD_SIGNATURE');
  });
});
