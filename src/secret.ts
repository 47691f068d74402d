// Constant-time comparison for the cluster secret and tokens.
import { createHash, timingSafeEqual } from 'node:crypto';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares in time independent of where the strings differ (hashing first equalises lengths). */
export function secretEquals(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string' || expected === '') return false;
  return timingSafeEqual(digest(given), digest(expected));
}

/** True when `given` matches any of the configured tokens; every token is checked. */
export function matchesAny(given: string | undefined, tokens: readonly string[]): string | undefined {
  let hit: string | undefined;
  for (const t of tokens) if (secretEquals(given, t)) hit = t;
  return hit;
}

export function bearer(header: string | string[] | undefined): string | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return undefined;
  const m = /^Bearer\s+(.+)$/i.exec(h.trim());
  return m ? m[1] : undefined;
}

export const SECRET_HEADER = 'x-ugcfs-secret';
