// Constant-time comparison for the cluster secret and tokens.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
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

/** The credential a request presents to internal routes: X-Ugcfs-Secret, else a bearer token. */
export function credentialOf(headers: IncomingHttpHeaders): string | undefined {
  return (headers[SECRET_HEADER] as string | undefined) ?? bearer(headers.authorization);
}

/**
 * Who may call a kind of route, by the credentials it accepts. `known` are the other
 * credentials the server holds: presenting one of those (an origin's credential on a
 * block route) is 403 UGCFS_ERR_FORBIDDEN, anything else 401. Empty values never match, so a
 * kind with nothing configured refuses every request.
 */
export class CredentialRule {
  private readonly accepted: readonly string[];
  private readonly others: readonly string[];
  constructor(accepted: readonly string[], known: readonly string[] = []) {
    this.accepted = accepted.filter((s) => s !== '');
    this.others = known.filter((s) => s !== '' && !this.accepted.includes(s));
  }

  /** True when `given` is accepted, without throwing. */
  accepts(given: string | undefined): boolean {
    return matchesAny(given, this.accepted) !== undefined;
  }

  /** True when `given` is accepted; throws UGCFS_ERR_FORBIDDEN or UGCFS_ERR_UNAUTHORIZED otherwise. */
  check(given: string | undefined): true {
    if (this.accepts(given)) return true;
    if (matchesAny(given, this.others) !== undefined) throw new UgcfsError('UGCFS_ERR_FORBIDDEN', 'this credential may not call this route (the origin credential reaches files only; blocks and cluster operations need the cluster secret)');
    throw new UgcfsError('UGCFS_ERR_UNAUTHORIZED', 'cluster secret missing or wrong');
  }
}

/**
 * The credential check for routes answered ahead of fastify, with a per-connection memo:
 * the first time a connection presents a credential it is compared in constant time; later
 * requests on that connection presenting the very same value skip the hashing. That
 * shortcut can only tell a client about the value it already proved it knows.
 * Throws as CredentialRule.check does.
 */
export function connectionSecretGuard(rule: CredentialRule): (req: IncomingMessage) => void {
  const proven = new WeakMap<Socket, string>();
  return (req) => {
    const given = credentialOf(req.headers);
    if (given !== undefined && proven.get(req.socket) === given) return;
    rule.check(given);
    proven.set(req.socket, given!);
  };
}
