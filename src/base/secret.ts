// Constant-time comparison for the cluster secret and tokens.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { UgcfsError } from './errors.ts';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

// The configured secrets and tokens are few and fixed, so each one's digest is computed once
// rather than on every internal request (a measurable share of a data-server read).
const expectedDigests = new Map<string, Buffer>();

function expectedDigest(expected: string): Buffer {
  let d = expectedDigests.get(expected);
  if (!d) {
    d = digest(expected);
    if (expectedDigests.size < 1024) expectedDigests.set(expected, d);
  }
  return d;
}

/** Compares in time independent of where the strings differ (hashing first equalises lengths). */
export function secretEquals(given: string | undefined, expected: string): boolean {
  if (typeof given !== 'string' || expected === '') return false;
  return timingSafeEqual(digest(given), expectedDigest(expected));
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

/**
 * The cluster-secret check for routes answered ahead of fastify, with a per-connection memo:
 * the first time a connection presents the secret it is compared in constant time
 * (secretEquals); later requests on that connection presenting the very same value skip the
 * hashing. That shortcut can only tell a client about the value it already proved it knows.
 * Throws UGCFS_ERR_UNAUTHORIZED; with no secret configured every request is refused.
 */
export function connectionSecretGuard(secret: string): (req: IncomingMessage) => void {
  const proven = new WeakMap<Socket, string>();
  return (req) => {
    const given = (req.headers[SECRET_HEADER] as string | undefined) ?? bearer(req.headers.authorization);
    if (given !== undefined && proven.get(req.socket) === given) return;
    if (!secretEquals(given, secret)) throw new UgcfsError('UGCFS_ERR_UNAUTHORIZED', 'cluster secret missing or wrong');
    proven.set(req.socket, given!);
  };
}
