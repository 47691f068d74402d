// Signed variant URLs: with signing keys configured, a variant is only computed for a URL
// carrying `sig=<HMAC>`, so nobody can make the origin render arbitrary sizes. The first key
// signs, every key verifies, so keys rotate by prepending a new one and dropping the oldest
// once URLs signed with it have aged out. The signature covers the path and query exactly as
// sent, minus the `sig` parameter itself — so an `exp=<unix seconds>` parameter is covered
// too, and a signed URL carrying one is refused once that time has passed.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { UgcfsError } from '../src/base/errors.ts';

const SIG_CHARS = 22; // 132 bits of HMAC-SHA256, base64url

export function signTarget(key: string, signed: string): string {
  return createHmac('sha256', key).update(signed).digest('base64url').slice(0, SIG_CHARS);
}

/**
 * Appends `sig=` for the first key to a path with optional query; with `exp` (unix seconds)
 * first appends `exp=`, which the signature then covers.
 */
export function signUrl(keys: readonly string[], pathAndQuery: string, opts: { exp?: number } = {}): string {
  const key = keys[0];
  if (!key) return pathAndQuery;
  let target = pathAndQuery;
  if (opts.exp !== undefined) {
    if (!Number.isInteger(opts.exp) || opts.exp < 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'exp must be whole unix seconds');
    target += `${target.includes('?') ? '&' : '?'}exp=${opts.exp}`;
  }
  return `${target}${target.includes('?') ? '&' : '?'}sig=${signTarget(key, target)}`;
}

/** Throws 403 UGCFS_ERR_BAD_SIGNATURE unless `sig` signs `signed` and `exp` (if any) has not passed. */
export function verifySignature(keys: readonly string[], signed: string, sig: string | undefined, exp?: number, nowMs = Date.now()): void {
  if (sig === undefined || sig === '') throw new UgcfsError('UGCFS_ERR_BAD_SIGNATURE', 'this origin only serves signed variant URLs; sig is missing');
  const given = Buffer.from(sig);
  let ok = false;
  for (const key of keys) {
    const want = Buffer.from(signTarget(key, signed));
    if (want.length === given.length && timingSafeEqual(want, given)) ok = true;
  }
  if (!ok) throw new UgcfsError('UGCFS_ERR_BAD_SIGNATURE', 'the variant URL signature does not match');
  // Checked after the signature, so only the signer's own exp can say "expired".
  if (exp !== undefined && exp * 1000 <= nowMs) {
    throw new UgcfsError('UGCFS_ERR_BAD_SIGNATURE', `the signed URL expired at ${new Date(exp * 1000).toISOString()} (exp=${exp})`);
  }
}
