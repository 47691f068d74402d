// What a request passes before any route reads a byte of its body (docs/SECURITY.md,
// "Requests: routing, authentication, limits and hosts"):
//   - its Host names this server (AllowedHosts, checked by http-server.ts ahead of every
//     route, fastify's and those answered from node:http alike): DNS rebinding, which sends
//     the attacker's own name, reaches nothing;
//   - its route exists (unrouted: 404 at once), its caller proves what the route declares
//     (`config: { auth }`), and its declared length fits the route's body limit — all in the
//     onRequest stage, which fastify runs before it parses a body (routeGate below);
// and the server's timeouts and connection cap (serverLimits).
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import type { FastifyRequest, HookHandlerDoneFunction, onRequestHookHandler, RouteOptions } from 'fastify';
import { UgcfsError } from '../base/errors.ts';
import { splitUrls } from '../base/config.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * Who may call the route, checked before its body is read: 'public', 'internal' (the
     * cluster secret), or a kind the server's role adds (createHttpServer's `auth`). Every
     * route declares one; a route without is refused at registration.
     */
    auth?: string;
  }
}

/** Throws (401, 403...) unless the request proves what its route's auth kind asks. */
export type AuthCheck = (req: FastifyRequest) => void;

/** What a server's small routes accept when they declare no bodyLimit. */
export const DEFAULT_BODY_LIMIT = 64 * 1024;

/** The server-side limits of every role (COMMON_SERVER_OPTIONS in src/base/role-options.ts). */
export interface ServerLimits {
  requestTimeoutMs: number;
  headersTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
  maxRequestsPerSocket: number;
  allowedHosts: readonly string[];
}

/**
 * The one rule for what an answer does to its connection when the request's body has not been
 * read (a refusal: 401, 404, 421, ...), for fastify's routes (http-server.ts onSend) and
 * those answered ahead of it (ahead-route.ts answerError) alike. A declared body up to this
 * size is read and dropped by node:http after the answer, and the connection kept: a proxy in
 * front (nginx) that is still sending the body sees a close as the upstream failing, and
 * answers its client 502 instead of our 401. A bigger or chunked body closes the connection
 * rather than be read for nothing, and so does a 413 body past DEFAULT_BODY_LIMIT (too large
 * for its route: not worth reading either).
 */
export const REFUSED_BODY_DRAIN = 1024 * 1024;

/** True when the answer (of `status`) to `req` must close the connection: see REFUSED_BODY_DRAIN. */
export function closesUnreadBody(req: IncomingMessage, status: number): boolean {
  if (req.complete) return false;
  if (req.headers['transfer-encoding'] !== undefined) return true;
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) > (status === 413 ? DEFAULT_BODY_LIMIT : REFUSED_BODY_DRAIN);
}

/** The host name of a Host header: lower case, without port, brackets or a trailing dot. */
export function hostnameOf(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(1, end);
  }
  const colon = h.lastIndexOf(':');
  if (colon >= 0) h = h.slice(0, colon);
  return h.endsWith('.') ? h.slice(0, -1) : h;
}

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'];
/** verdicts kept per Host header value; past this many, hosts are judged afresh each time */
const MEMO_SIZE = 256;

/**
 * The Host names a server answers: loopback names, any IP address (a name is what DNS
 * rebinding needs; an address in the Host header is not one), the listen host, the server's
 * own public or advertised URLs, and --allowed-hosts (`*`: any host).
 */
export class AllowedHosts {
  readonly any: boolean;
  private readonly names: Set<string>;
  private readonly memo = new Map<string, boolean>();

  constructor(opts: { listenHost?: string; urls?: readonly string[]; allowed?: readonly string[] }) {
    const allowed = opts.allowed ?? [];
    this.any = allowed.includes('*');
    this.names = new Set(LOOPBACK_NAMES);
    if (opts.listenHost) this.names.add(hostnameOf(opts.listenHost.includes(':') && !opts.listenHost.startsWith('[') ? `[${opts.listenHost}]` : opts.listenHost));
    for (const list of opts.urls ?? []) {
      for (const u of splitUrls(list)) {
        try {
          this.names.add(hostnameOf(new URL(u).host));
        } catch {
          // not a URL: config validation refuses it elsewhere
        }
      }
    }
    for (const name of allowed) if (name !== '*') this.names.add(hostnameOf(name));
  }

  /** The names besides loopback and IP addresses (what a refusal tells the operator to add to). */
  list(): string[] {
    return [...this.names].filter((n) => !LOOPBACK_NAMES.includes(n));
  }

  allows(host: string | undefined): boolean {
    if (this.any) return true;
    if (host === undefined) return false;
    const known = this.memo.get(host);
    if (known !== undefined) return known;
    const name = hostnameOf(host);
    const ok = this.names.has(name) || isIP(name) !== 0;
    if (this.memo.size < MEMO_SIZE) this.memo.set(host, ok);
    return ok;
  }

  refusal(host: string | undefined): UgcfsError {
    const shown = host === undefined ? 'no Host header' : `Host ${JSON.stringify(host.slice(0, 100))}`;
    return new UgcfsError('UGCFS_ERR_BAD_HOST', `${shown} is not a name this server answers: add it to --allowed-hosts (UGCFS_ALLOWED_HOSTS) if it is one`);
  }
}

/**
 * An onRoute hook: refuses a route that declares no known auth kind, and puts in front of the
 * route's own onRequest hooks the check its declaration asks for (the credential, then the
 * declared body length against the route's limit). fastify runs onRequest hooks before it
 * reads the body, so a refused request's body is never parsed (drained or the connection
 * closed: REFUSED_BODY_DRAIN).
 */
export function routeGate(checks: ReadonlyMap<string, AuthCheck | undefined>, defaultBodyLimit: number): (route: RouteOptions) => void {
  return (route) => {
    const kind = route.config?.auth;
    if (kind === undefined || !checks.has(kind)) {
      throw new UgcfsError('UGCFS_ERR_INTERNAL', `route ${String(route.method)} ${route.url} must declare config.auth, one of ${[...checks.keys()].join(', ')} (got ${JSON.stringify(kind)})`);
    }
    const check = checks.get(kind);
    const limit = route.bodyLimit ?? defaultBodyLimit;
    const gate: onRequestHookHandler = (req: FastifyRequest, _reply, done: HookHandlerDoneFunction) => {
      try {
        if (check !== undefined) check(req);
        const declared = req.headers['content-length'];
        if (declared !== undefined && Number(declared) > limit) throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `request body is larger than ${limit} bytes`);
      } catch (err) {
        done(err as Error);
        return;
      }
      done();
    };
    const own = route.onRequest;
    route.onRequest = own === undefined ? [gate] : [gate, ...(Array.isArray(own) ? own : [own])];
  };
}

/** fastify and node:http settings for the limits (timeouts, keep-alive, requests per socket). */
export function serverLimits(l: ServerLimits) {
  // node refuses a headers timeout above a (non-zero) request timeout
  const headersTimeout = l.requestTimeoutMs > 0 ? Math.min(l.headersTimeoutMs, l.requestTimeoutMs) : l.headersTimeoutMs;
  const shortest = l.requestTimeoutMs > 0 ? Math.min(headersTimeout, l.requestTimeoutMs) : headersTimeout;
  return {
    requestTimeout: l.requestTimeoutMs,
    keepAliveTimeout: l.keepAliveTimeoutMs,
    maxRequestsPerSocket: l.maxRequestsPerSocket,
    // node looks for expired requests every connectionsCheckingInterval (default 30 s), so a
    // short timeout needs a shorter look
    http: { headersTimeout, requestTimeout: l.requestTimeoutMs, keepAliveTimeout: l.keepAliveTimeoutMs, connectionsCheckingInterval: Math.max(100, Math.min(5000, Math.floor(shortest / 4))) },
  };
}
