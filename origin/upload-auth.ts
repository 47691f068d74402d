// Who is calling: an upload token's holder or the admin. No caller is trusted for its
// source address: a same-host proxy makes every client look local. A file records an owner id derived from the token by a one-way hash, so
// storage, logs and answers never hold a token, yet the same token can later delete it.
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { bearer, matchesAny, secretEquals } from '../src/base/secret.ts';

export interface Caller {
  owner: string;
  admin: boolean;
}

export const ADMIN_OWNER = 'admin';

export function ownerIdOf(token: string): string {
  return 'u-' + createHash('sha256').update(`ugcfs-owner\0${token}`).digest('hex').slice(0, 20);
}

export interface AuthConfig {
  uploadTokens: readonly string[];
  adminToken: string;
}

/** The caller, or a 401 when the request proves nothing. */
export function callerOf(req: FastifyRequest, cfg: AuthConfig): Caller {
  const token = bearer(req.headers.authorization);
  if (cfg.adminToken !== '' && secretEquals(token, cfg.adminToken)) return { owner: ADMIN_OWNER, admin: true };
  const hit = matchesAny(token, cfg.uploadTokens);
  if (hit !== undefined) return { owner: ownerIdOf(hit), admin: false };
  throw new UgcfsError('UGCFS_ERR_UNAUTHORIZED', token ? 'the upload token is not valid' : 'an upload token is required (Authorization: Bearer <token>)');
}
