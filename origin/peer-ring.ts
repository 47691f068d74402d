// Several origins share one variant cache: a consistent hashring over every origin's URL
// gives each variant exactly one owner, which computes and caches it; the others ask the
// owner over an internal route guarded by the cluster secret. An owner that is down or
// failing is skipped (the asker computes locally), so a lost origin costs duplicate work,
// never errors. Deletes are broadcast to every peer before the DELETE is answered.
import { createRequire } from 'node:module';
import type { Dispatcher } from 'undici';
import { callRaw } from '../src/clients/http-client.ts';
import { listenUrl } from '../src/http/http-server.ts';
import { UgcfsError, errorFromBody } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';

interface HashRing {
  get(key: string): string;
}
const HashRingCtor = createRequire(import.meta.url)('hashring') as new (servers: string[]) => HashRing;

export const PEER_ROUTES = {
  /** GET ?v=<variant key>&n=0|1 -> the variant's bytes (owner only; never forwarded again) */
  variant: '/_internal/variant/:fid',
  /** POST {fid} -> 204 after the fid is tombstoned and purged from this origin's caches */
  purge: '/_internal/purge',
} as const;

/**
 * This origin's place on the ring, undefined without --peers: --public-url, else the URL it
 * listens on. The other origins list it by that URL, so it must be known before listening:
 * with --port 0 and no --public-url there is no such URL, and that is a usage error.
 */
export function ringSelf(c: { peers: readonly string[]; publicUrl: string; host: string; port: number; tlsCert: string }): string | undefined {
  if (c.peers.length === 0) return undefined;
  if (c.publicUrl !== '') return c.publicUrl.replace(/\/+$/, '');
  if (c.port === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', "--peers needs this origin's own URL as the other origins list it: give --public-url or a fixed --port");
  // As src/http/http-server.ts's listen() names the URL it listens on.
  return listenUrl(c.host, c.port, c.tlsCert !== '');
}

export interface PeerVariant {
  body: Buffer;
  mime: string;
  etag: string;
  lastModified: number;
}

export class PeerRing {
  private readonly ring: HashRing;
  readonly others: string[];

  constructor(
    peers: readonly string[],
    readonly self: string,
    private readonly secret: string,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    /** the agent of calls to the other origins (--tls-ca); default the shared one */
    private readonly dispatcher?: Dispatcher,
  ) {
    const all = [...new Set([...peers.map((p) => p.replace(/\/+$/, '')), self])].sort();
    this.ring = new HashRingCtor(all);
    this.others = all.filter((p) => p !== self);
  }

  /** The owner's URL, or undefined when this origin owns `key`. */
  ownerOf(key: string): string | undefined {
    const owner = this.ring.get(key);
    return owner === this.self ? undefined : owner;
  }

  /**
   * Asks the owner for a variant. Returns undefined when the owner cannot answer (down, 5xx),
   * so the caller computes locally; the owner's 4xx (e.g. not found) is the answer.
   */
  async fetch(owner: string, fid: string, variantKey: string, negotiated: boolean): Promise<PeerVariant | undefined> {
    const url = `${owner}${PEER_ROUTES.variant.replace(':fid', fid)}?v=${encodeURIComponent(variantKey)}&n=${negotiated ? 1 : 0}`;
    let res;
    try {
      res = await callRaw(url, { method: 'GET', secret: this.secret || undefined, timeoutMs: this.timeoutMs, dispatcher: this.dispatcher });
    } catch (err) {
      this.metrics.peerFetches.inc({ result: 'unreachable' });
      this.log.warn({ owner, err: (err as Error).message }, 'owner origin unreachable; computing locally');
      return undefined;
    }
    if (res.status === 200) {
      this.metrics.peerFetches.inc({ result: 'ok' });
      const h = (name: string) => String(res.headers[name] ?? '');
      return { body: res.body, mime: h('content-type'), etag: h('etag'), lastModified: Date.parse(h('last-modified')) || 0 };
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(res.body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const err = errorFromBody(res.status, parsed);
    if (res.status >= 400 && res.status < 500 && err.code !== 'UGCFS_ERR_UNAUTHORIZED') {
      this.metrics.peerFetches.inc({ result: 'refused' });
      throw err;
    }
    this.metrics.peerFetches.inc({ result: 'failed' });
    this.log.warn({ owner, status: res.status, code: err.code }, 'owner origin failed; computing locally');
    return undefined;
  }

  /** Tells every other origin to drop `fid`; resolves when all answered or timed out. */
  async broadcastPurge(fid: string): Promise<void> {
    await Promise.all(
      this.others.map(async (peer) => {
        try {
          const res = await callRaw(`${peer}${PEER_ROUTES.purge}`, { method: 'POST', body: { fid }, secret: this.secret || undefined, timeoutMs: 2_000, dispatcher: this.dispatcher });
          if (res.status !== 204) throw new UgcfsError('UGCFS_ERR_UPSTREAM', `purge answered ${res.status}`);
        } catch (err) {
          // A peer that cannot be told is down, so it serves nothing now; its disk cache is
          // re-checked against storage when it comes back (see OriginCore.verifiedFids).
          this.log.warn({ peer, fid, err: (err as Error).message }, 'purge broadcast failed');
        }
      }),
    );
  }
}
