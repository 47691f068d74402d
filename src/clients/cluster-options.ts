// Options every admin command shares to reach the cluster (see cli/commands/status.ts), and
// the clients made from them.
import { opt, splitUrls } from '../base/config.ts';
import { NAMESERVER_URL_OPTION } from '../base/role-options.ts';
import { NS_TIMEOUT_MS, NameserverClient } from './nameserver-client.ts';
import { agentFor } from './http-client.ts';

export const CLUSTER_CLIENT_OPTIONS = {
  ...NAMESERVER_URL_OPTION,
  clusterSecret: opt.string('', 'the cluster secret', { env: 'UGCFS_CLUSTER_SECRET', secret: true }),
  adminToken: opt.string('', 'admin token', { env: 'UGCFS_ADMIN_TOKEN', secret: true }),
  timeoutMs: opt.int(NS_TIMEOUT_MS, 'per-request timeout in ms', { min: 100 }),
  tlsCa: opt.string('', "PEM CA bundle file trusted, besides Node's default CAs, for https:// name servers and data servers", { env: 'UGCFS_TLS_CA' }),
};

/** What CLUSTER_CLIENT_OPTIONS load into. */
export interface ClusterClientConfig {
  /** comma-separated name-server URLs (splitUrls) */
  nameserver: string;
  clusterSecret: string;
  adminToken: string;
  timeoutMs: number;
  /** --tls-ca ('' or absent: the default CAs only) */
  tlsCa?: string;
}

/** The name-server client of an admin command. */
export function nameserverClientFromConfig(c: ClusterClientConfig): NameserverClient {
  return new NameserverClient({ nameservers: splitUrls(c.nameserver), secret: c.clusterSecret, adminToken: c.adminToken, timeoutMs: c.timeoutMs, dispatcher: agentFor(c.tlsCa ?? '') });
}
