// Options every server role shares. Each role's own table spreads these in.
import { opt } from './config.ts';

export const COMMON_SERVER_OPTIONS = {
  host: opt.string('127.0.0.1', 'address to listen on', { env: 'UGCFS_HOST' }),
  clusterSecret: opt.string('', 'shared secret for internal APIs; required to listen beyond loopback', { env: 'UGCFS_CLUSTER_SECRET', secret: true }),
  logLevel: opt.string('info', 'pino log level', { env: 'UGCFS_LOG_LEVEL', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] }),
  accessLog: opt.bool(false, 'log one line per answered request (method, url, status, ms, bytes, request id) at info level', { env: 'UGCFS_ACCESS_LOG' }),
};

export const NAMESERVER_URL_OPTION = {
  nameserver: opt.urls('http://127.0.0.1:7000', 'name server base URL; a comma-separated list for a high-availability group (every member)', { env: 'UGCFS_NAMESERVER' }),
};
