// The epoch fence on HTTP: every request that carries x-ugcfs-epoch (a leading name server
// sends it on every command: block create, delete, pull, readonly, compact, scrub, quarantine
// delete, replayed needle deletes, repair PUTs) is checked here, once, ahead of every route —
// fastify's and the needle routes answered from node:http alike:
//   - the cluster secret first (an epoch is taken only from a peer that proves it is one);
//   - malformed: 400 UGCFS_ERR_BAD_REQUEST;
//   - below the highest epoch seen: 409 UGCFS_ERR_STALE_EPOCH, nothing done, body not read
//     (ugcfs_fenced_requests_total{source="http"});
//   - above it: stored (synced, epoch-fence.ts) first, then the request goes on to its route.
// A request without the header (every client read and write) goes straight on: what it pays
// is one header lookup. Answers given here are metered under route "epoch-fence".
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { connectionSecretGuard, type CredentialRule } from '../src/base/secret.ts';
import type { AccessLog } from '../src/http/access-log.ts';
import { answerError, InFlight, requestId, RouteMeter, serveAhead } from '../src/http/ahead-route.ts';
import { HEADERS } from '../src/wire/protocol.ts';
import type { EpochFence } from './epoch-fence.ts';

const EPOCH = HEADERS.epoch;

export interface EpochRouteContext {
  fence: EpochFence;
  /** the cluster secret only: an epoch is taken from the name server, never an origin */
  rule: CredentialRule;
  metrics: Metrics;
  log: Logger;
  access: AccessLog | undefined;
}

/** The header's epoch; UGCFS_ERR_BAD_REQUEST unless it is one decimal integer below 2^53. */
export function parseEpochHeader(v: string | string[]): number {
  const n = typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', `${EPOCH} must be a non-negative decimal integer (one header)`);
  return n;
}

export function staleEpoch(epoch: number, highest: number): UgcfsError {
  return new UgcfsError('UGCFS_ERR_STALE_EPOCH', `epoch ${epoch} is below epoch ${highest}, the highest this data server has seen: the sender no longer leads; nothing was done`);
}

/**
 * Installs the fence ahead of every route; call after the other routes ahead of fastify
 * (the last one installed is asked first) and before the server is ready.
 */
export function installEpochFence(app: FastifyInstance, ctx: EpochRouteContext): void {
  const server = app.server as Server;
  const checkSecret = connectionSecretGuard(ctx.rule);
  const meter = new RouteMeter(ctx.metrics, 'epoch-fence', ctx.access);
  // requests held while their epoch is stored: fastify's close waits for them
  const flight = new InFlight(app);

  const refuse = (req: IncomingMessage, res: ServerResponse, err: unknown, started: number): void => {
    const rid = requestId(req.headers);
    const status = answerError(res, err, ctx.log, rid, flight.closing);
    meter.done(req.method ?? '', req.url ?? '', status, started, undefined, rid);
  };

  serveAhead(server, (req, res) => {
    const given = req.headers[EPOCH];
    if (given === undefined) return false;
    const started = performance.now();
    let epoch: number;
    try {
      checkSecret(req);
      epoch = parseEpochHeader(given);
    } catch (err) {
      refuse(req, res, err, started);
      return true;
    }
    const verdict = ctx.fence.check(epoch);
    if (verdict === 'ok') return false;
    if (verdict === 'stale') {
      ctx.fence.refused('http');
      refuse(req, res, staleEpoch(epoch, ctx.fence.highest), started);
      return true;
    }
    flight.begin();
    void ctx.fence
      .raise(epoch)
      .then(
        // Stored: the request is handed in again, and this time goes on to its route (or is
        // refused, should a yet higher epoch have been stored meanwhile).
        () => void server.emit('request', req, res),
        (err: unknown) => refuse(req, res, new UgcfsError('UGCFS_ERR_INTERNAL', `could not store epoch ${epoch}`, { cause: err }), started),
      )
      .catch((err: unknown) => refuse(req, res, err, started))
      .finally(() => flight.end());
    return true;
  });
}
