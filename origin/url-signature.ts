// Signed variant URLs: with signing keys configured, a variant is only computed for a URL
// carrying `sig=<HMAC>`, so nobody can make the origin render arbitrary sizes. The first key
// signs, every key verifies, so keys rotate by prepending a new one and dropping the oldest
// once URLs signed with it have aged out. The signature covers the path and query exactly as
// sent, minus the `sig` parameter itself.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { UgcfsError } from '../src/base/errors.ts';

const SIG_CHARS = 22; // 132 bits of HMAC-SHA256, base64url

export function signTarget(key: string, signed: string): string {
  return createHmac('sha256', key).update(signed).digest('base64url').slice(0, SIG_CHARS);
}

/** Appends `sig=` for the first key to a path with optional query. */
export function signUrl(keys: readonly string[], pathAndQuery: string): string {
  const key = keys[0];
  if (!key) return pathAndQuery;
  return `${pathAndQuery}${pathAndQuery.includes('?') ? '&' : '?'}sig=${signTarget(key, pathAndQuery)}`;
}

export function verifySignature(keys: readonly string[], signed: string, sig: string | undefined): void {
  if (sig === undefined || sig === '') throw new UgcfsError('UGCFS_ERR_BAD_SIGNATURE', 'this origin only serves signed variant URLs; sig is missing');
  const given = Buffer.from(sig);
  let ok = false;
  for (const key of keys) {
    const want = Buffer.from(signTarget(key, signed));
    if (want.length === given.length && timingSafeEqual(want, given)) ok = true;
  }
  if (!ok) throw new UgcfsError('UGCFS_ERR_BAD_SIGNATURE', 'the variant URL signature does not match');
}
