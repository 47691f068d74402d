// Options every server role shares. Each role's own table spreads these in.
import { opt } from './config.ts';

/**
 * The limits every server applies to requests and connections (src/http/request-gate.ts).
 * The request timeout bounds receiving a request (headers and body), not answering it: a
 * block streamed out, a pull or a compaction that takes minutes is not cut by it.
 */
export const REQUEST_LIMIT_OPTIONS = {
  requestTimeoutMs: opt.int(120_000, 'time a client has to send one whole request, headers and body (0: no limit); a slower one is answered 408 and closed. Raise it for large uploads over slow links', { env: 'UGCFS_REQUEST_TIMEOUT_MS', min: 0 }),
  headersTimeoutMs: opt.int(15_000, "time a client has to send a request's headers; a slower one is answered 408 and closed", { env: 'UGCFS_HEADERS_TIMEOUT_MS', min: 1000 }),
  keepAliveTimeoutMs: opt.int(72_000, 'how long an idle keep-alive connection stays open (above the 60 s idle timeout of common load balancers)', { env: 'UGCFS_KEEP_ALIVE_TIMEOUT_MS', min: 1000 }),
  maxConnections: opt.int(4096, 'connections open at once; further ones are closed as they arrive', { env: 'UGCFS_MAX_CONNECTIONS', min: 1 }),
  maxRequestsPerSocket: opt.int(0, 'requests one keep-alive connection may carry before the server closes it (0: no limit)', { min: 0 }),
  allowedHosts: opt.list([], 'host names (Host header) this server answers besides loopback names, IP addresses, its listen host and its public or advertised URL; * answers any. Others get 421 UGCFS_ERR_BAD_HOST', { env: 'UGCFS_ALLOWED_HOSTS' }),
};

/**
 * HTTPS (docs/SECURITY.md, "TLS between roles"): a server serves it with a certificate and
 * key, and, being a client of its peers too, may trust a private CA when it calls them.
 */
export const TLS_OPTIONS = {
  tlsCert: opt.string('', 'PEM certificate (chain) file: serve HTTPS instead of HTTP; with --tls-key', { env: 'UGCFS_TLS_CERT' }),
  tlsKey: opt.string('', 'PEM private key file of --tls-cert (unencrypted)', { env: 'UGCFS_TLS_KEY' }),
  tlsCa: opt.string('', "PEM CA bundle file trusted, besides Node's default CAs, when this server calls https:// peers (name servers, data servers, peer origins)", { env: 'UGCFS_TLS_CA' }),
};

/**
 * Request tracing (src/base/trace.ts; docs/OPERATIONS-GUIDE.md, "Traces"): OpenTelemetry
 * spans exported over OTLP/HTTP. Off unless an endpoint is given.
 */
export const TRACE_OPTIONS = {
  otlpEndpoint: opt.url('', 'OpenTelemetry collector to send request traces to over OTLP/HTTP (JSON), e.g. http://127.0.0.1:4318; /v1/traces is added unless the URL ends with it. Empty: tracing off, at no cost', { env: 'UGCFS_OTLP_ENDPOINT' }),
  otlpSampleRatio: opt.number(1, "share of new traces (requests that arrive without a traceparent) recorded with --otlp-endpoint, 0 to 1; a caller's traceparent decides for its requests", { env: 'UGCFS_OTLP_SAMPLE_RATIO', min: 0, max: 1 }),
};

export const COMMON_SERVER_OPTIONS = {
  host: opt.string('127.0.0.1', 'address to listen on', { env: 'UGCFS_HOST' }),
  clusterSecret: opt.string('', 'shared secret every internal route asks for, loopback included (at least 32 characters)', { env: 'UGCFS_CLUSTER_SECRET', secret: true, required: true }),
  originSecret: opt.string('', "the origins' credential (at least 32 characters): name and data servers take it for reading, writing and deleting files, never for blocks or cluster operations; an origin given it calls with it instead of the cluster secret", { env: 'UGCFS_ORIGIN_SECRET', secret: true }),
  logLevel: opt.string('info', 'pino log level', { env: 'UGCFS_LOG_LEVEL', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }),
  accessLog: opt.bool(false, 'log one line per answered request (method, url, status, ms, bytes, request id) at info level', { env: 'UGCFS_ACCESS_LOG' }),
  ...REQUEST_LIMIT_OPTIONS,
  ...TLS_OPTIONS,
  ...TRACE_OPTIONS,
};

export const NAMESERVER_URL_OPTION = {
  nameserver: opt.urls('http://127.0.0.1:7000', 'name server base URL; a comma-separated list for a high-availability group (every member)', { env: 'UGCFS_NAMESERVER' }),
};
