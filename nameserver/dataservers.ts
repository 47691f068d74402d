// The name server's client of its data servers (src/clients/dataserver-client.ts): one per
// name server (per registry), with the cluster secret and the liveness watch — a call to a
// server alive at its start is given up (UGCFS_ERR_UNAVAILABLE) once the registry declares
// it dead, so a server that hangs without dying never holds a caller, or a block's claim,
// for a whole timeout.
import type { Dispatcher } from 'undici';
import { DataserverClient } from '../src/clients/dataserver-client.ts';
import { HEADERS } from '../src/wire/protocol.ts';
import type { Leadership } from './leadership.ts';
import type { Registry } from './registry.ts';

const clients = new WeakMap<Registry, DataserverClient>();

/** How often a call in progress checks that its server is still alive. */
export const LIVENESS_POLL_MS = 250;

/**
 * The client a name server commands its data servers with. With `leadership`, every call
 * carries the leader's epoch (HEADERS.epoch; data servers refuse a lower one than they have
 * seen) and is not sent at all once this name server stops leading. `dispatcher` is the
 * agent of --tls-ca. The first call for a registry decides.
 */
export function dataserverClient(registry: Registry, secret: string, leadership?: Pick<Leadership, 'requireLeader' | 'epoch' | 'kind'>, dispatcher?: Dispatcher): DataserverClient {
  let c = clients.get(registry);
  if (!c) {
    const fenced = leadership?.kind === 'etcd' ? leadership : undefined;
    c = new DataserverClient({
      secret,
      dispatcher,
      ...(fenced
        ? {
            commandHeaders: () => {
              fenced.requireLeader();
              return { [HEADERS.epoch]: String(fenced.epoch()) };
            },
          }
        : {}),
      isAlive: (ds) => {
        const e = registry.get(ds.id);
        return e !== undefined && registry.isAlive(e);
      },
      livenessPollMs: LIVENESS_POLL_MS,
    });
    clients.set(registry, c);
  }
  return c;
}

/** The data-server client of a name server's context. */
export function dataserversOf(ctx: { readonly registry: Registry; readonly config: { readonly clusterSecret: string }; readonly leadership?: Leadership }): DataserverClient {
  return dataserverClient(ctx.registry, ctx.config.clusterSecret, ctx.leadership);
}
