// The clients of the CDN edges an origin purges (`--purge-edges`, `--purge-webhook`;
// docs/ORIGIN.md, "Edge purge"): one client per edge, which knows how to make that edge
// forget, and one for the webhook. URLs, timeouts and the retry schedule live here; the
// origin's purge queue (origin/edge-purge.ts) decides what and when.
//
// The purge protocol, as deploy/varnish-edge.vcl and deploy/nginx-edge-purge.conf answer it:
// - by key: `PURGE /` with `xkey-purge: <key> <key>...` (fids and legacy keys). An edge that
//   purges by key (Varnish with xkey) answers 200 with `x-edge-purge: xkey`.
// - by URL: `PURGE <path?query>` exactly as a client asked for it. An edge that purges by
//   cache key (nginx's cache-purge module) answers 200 (purged) or 404 (not cached) with
//   `x-edge-purge: url`; it also answers the key purge that way, which is how the origin
//   learns to send it URLs instead.
// An answer without `x-edge-purge` is a failure: the URL does not lead to a purge endpoint
// (a public port, a plain proxy), and nothing may be counted as forgotten.
import { UgcfsError } from '../base/errors.ts';
import { callRaw, type RawResponse } from './http-client.ts';
import type { Dispatcher } from 'undici';

export const EDGE_PURGE = {
  method: 'PURGE',
  /** the keys to purge, space-separated */
  keysHeader: 'xkey-purge',
  /** every purge answer names how the edge purged: `xkey` or `url` */
  answerHeader: 'x-edge-purge',
  /** --purge-token, sent to edges (the webhook gets it as a bearer token) */
  tokenHeader: 'x-purge-token',
  /** keys in one key purge: ~50 x 40 characters stays far under any header limit */
  keysPerRequest: 50,
  /** deleted files taken from a queue at a time */
  filesPerBatch: 50,
  /** URL purges to one edge at once */
  urlConcurrency: 8,
  /** one purge request (an edge that is slower is as good as down: it is retried) */
  timeoutMs: 2_000,
  webhookTimeoutMs: 5_000,
  /** backoff after a failed attempt: first wait, doubling to the cap */
  retryFirstMs: 200,
  retryMaxMs: 10_000,
} as const;

export type EdgeKind = 'xkey' | 'url';

/** The next wait after a failure, given the last one (0: none yet). */
export function nextBackoff(lastMs: number): number {
  return lastMs === 0 ? EDGE_PURGE.retryFirstMs : Math.min(lastMs * 2, EDGE_PURGE.retryMaxMs);
}

/** A URL fit for logs and metric labels: no credentials, no query. */
export function edgeLabel(url: string): string {
  try {
    const u = new URL(url);
    return u.origin + u.pathname.replace(/\/+$/, '');
  } catch {
    return 'edge';
  }
}

function failed(label: string, what: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_UPSTREAM', `edge ${label}: ${what}`);
}

export class EdgeClient {
  /** how this edge purges, learnt from its first answer; undefined until then or after a failure */
  kind: EdgeKind | undefined;
  readonly label: string;
  private readonly base: string;

  constructor(url: string, private readonly token: string = '', private readonly dispatcher?: Dispatcher) {
    this.base = url.replace(/\/+$/, '');
    this.label = edgeLabel(url);
  }

  private async purge(path: string, headers: Record<string, string>): Promise<RawResponse> {
    if (this.token !== '') headers[EDGE_PURGE.tokenHeader] = this.token;
    try {
      return await callRaw(this.base + path, { method: EDGE_PURGE.method, headers, timeoutMs: EDGE_PURGE.timeoutMs, dispatcher: this.dispatcher });
    } catch (err) {
      this.kind = undefined;
      throw err;
    }
  }

  private answered(res: RawResponse, ok: readonly number[]): EdgeKind {
    const said = String(res.headers[EDGE_PURGE.answerHeader] ?? '');
    if ((said !== 'xkey' && said !== 'url') || !ok.includes(res.status)) {
      this.kind = undefined;
      throw failed(this.label, said === '' ? `answered ${res.status} without ${EDGE_PURGE.answerHeader}: not a purge endpoint` : `answered ${res.status}`);
    }
    this.kind = said;
    return said;
  }

  /**
   * Purges every object filed under one of `keys`. Returns 'xkey' when done, 'url' when the
   * edge purges by exact URL only (the caller then sends purgeUrl for each). Throws on failure.
   */
  async purgeKeys(keys: readonly string[]): Promise<EdgeKind> {
    const res = await this.purge('/', { [EDGE_PURGE.keysHeader]: keys.join(' ') });
    // a URL edge answers its own 404 (nothing cached under `/`) or 200
    return this.answered(res, [200, 404]);
  }

  /** Purges the object cached for exactly `url` (path and query); not cached counts as done. */
  async purgeUrl(url: string): Promise<void> {
    const res = await this.purge(url.startsWith('/') ? url : `/${url}`, {});
    this.answered(res, [200, 404]);
  }
}

/** The body a --purge-webhook receives, one per deleted file. */
export interface PurgeNotice {
  fid: string;
  /** the URLs (path and query) this origin served the file by */
  paths: string[];
  /** the keys its answers carried (Surrogate-Key / Cache-Tag) */
  keys: string[];
}

export class WebhookClient {
  readonly label = 'webhook';

  constructor(private readonly url: string, private readonly token: string = '', private readonly dispatcher?: Dispatcher) {}

  /** POSTs one notice; any 2xx is done, anything else throws (and is retried by the caller). */
  async post(notice: PurgeNotice): Promise<void> {
    const headers: Record<string, string> = this.token === '' ? {} : { authorization: `Bearer ${this.token}` };
    const res = await callRaw(this.url, { method: 'POST', body: notice, headers, timeoutMs: EDGE_PURGE.webhookTimeoutMs, dispatcher: this.dispatcher });
    if (res.status < 200 || res.status >= 300) throw failed(this.label, `answered ${res.status}`);
  }
}
