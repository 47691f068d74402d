// Heartbeats to the name server: registration, block reports and free space, every
// interval. The data server works without a name server (for tests and first boot), so a
// failed beat is logged once per outage and retried; commands in the reply are executed —
// only when the reply is from this server's own cluster (<data>/cluster, cluster-identity.ts):
// a name server of another cluster, or one that lost its state and made a new cluster, is
// refused, its commands ignored, and the blocks kept. An accepted reply's cluster id and
// lease ends are stored (synced) before any of its commands runs, and its time feeds the
// cluster clock that tombstone expiry follows.
import { statfs } from 'node:fs/promises';
import { ForeignClusterRefusal, NameserverClient } from '../src/clients/nameserver-client.ts';
import { isUgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { DsCommand, Heartbeat, HeartbeatReply } from '../src/wire/protocol.ts';
import type { BlockStore } from './block-store.ts';
import type { ClusterClock } from './cluster-clock.ts';
import { isClusterId, type ClusterIdentity, type IdentityUpdate } from './cluster-identity.ts';

export interface HeartbeatOptions {
  id: string;
  url: string;
  rack: string;
  nameserver: string;
  secret: string;
  intervalMs: number;
  dataDir: string;
  blockSize: number;
  store: BlockStore;
  metrics: Metrics;
  log: Logger;
  /** <data>/cluster: the cluster id and high-water marks */
  identity: ClusterIdentity;
  /** fed with the name server's time from every accepted reply */
  clock: ClusterClock;
}

export interface HeartbeatLoop {
  /** sends one beat now (tests, and right after start) */
  beat(): Promise<boolean>;
  stop(): Promise<void>;
}

export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Decimal lease end from a reply; undefined when absent or malformed. */
export function startHeartbeat(o: HeartbeatOptions): HeartbeatLoop {
  const nameserver = new NameserverClient({ nameservers: [o.nameserver], secret: o.secret });
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<boolean> | undefined;
  let failing = false;
  /** why the name server's replies are refused now (logged once per such outage) */
  let refusing: string | undefined;

  const refuse = (why: string): false => {
    if (refusing !== why) o.log.error({ nameserver: o.nameserver, cluster: o.identity.cluster }, why);
    refusing = why;
    return false;
  };

  const execute = async (cmd: DsCommand): Promise<void> => {
    try {
      if (cmd.kind === 'delete-block') {
        // Never unlinked at once: the file goes to quarantine/, so a name server that is
        // wrong about this copy being extra cannot destroy the only one.
        if (o.store.has(cmd.block)) await o.store.quarantineBlock(cmd.block, cmd.reason);
        o.log.info({ block: cmd.block, reason: cmd.reason }, 'quarantined block on name server request');
      } else if (cmd.kind === 'readonly') {
        if (o.store.has(cmd.block)) await o.store.setReadonly(cmd.block, cmd.readonly);
      } else {
        o.log.warn({ cmd }, 'unknown command from name server');
      }
    } catch (err) {
      if (!isUgcfsError(err, 'UGCFS_ERR_BLOCK_NOT_FOUND')) o.log.error({ err, cmd }, 'name server command failed');
    }
  };

  const beatOnce = async (): Promise<boolean> => {
    let reply: HeartbeatReply;
    try {
      const free = await freeBytes(o.dataDir);
      o.metrics.freeBytes.set(free);
      o.store.updateGauges();
      const blocks = o.store.reports({ completeOnly: true });
      // A block on disk proves its id was handed out, whatever name server this one meets next.
      const held = blocks.reduce((m, b) => Math.max(m, b.id), -1);
      if (held >= 0) await o.identity.update({ blockIds: { upTo: BigInt(held) + 1n, state: '' } });
      const hb: Heartbeat = {
        id: o.id,
        url: o.url,
        rack: o.rack,
        freeBytes: free,
        usedBytes: o.store.usedBytes(),
        blockSize: o.blockSize,
        blocks,
        ...(o.identity.cluster !== undefined ? { cluster: o.identity.cluster } : {}),
        highWater: o.identity.highWater(),
        quarantine: o.store.quarantineStats(),
      };
      try {
        reply = await nameserver.heartbeat(hb, Math.max(2000, o.intervalMs * 2));
      } catch (err) {
        if (!(err instanceof ForeignClusterRefusal)) throw err;
        if (failing) o.log.info({ nameserver: o.nameserver }, 'name server reachable again');
        failing = false;
        const theirs = err.cluster ?? 'unknown';
        const mine = o.identity.cluster;
        if (mine === undefined) return refuse(`name server ${o.nameserver} (cluster ${theirs}) refuses this data server, which holds blocks but no cluster id: ${err.message}; blocks kept`);
        return refuse(`name server ${o.nameserver} belongs to cluster ${theirs}, this data server to ${mine}: refusing its commands; blocks kept`);
      }
      if (failing) o.log.info({ nameserver: o.nameserver }, 'name server reachable again');
      failing = false;
    } catch (err) {
      if (!failing) o.log.warn({ nameserver: o.nameserver, err: (err as Error).message }, 'heartbeat failed; will keep retrying');
      failing = true;
      return false;
    }
    try {
      return await accept(reply);
    } catch (err) {
      o.log.error({ err, nameserver: o.nameserver }, 'could not act on the name server\'s reply');
      return false;
    }
  };

  /** Checks the reply is from our cluster, stores what it teaches, then runs its commands. */
  const accept = async (reply: HeartbeatReply): Promise<boolean> => {
    const before = o.identity.cluster;
    // What the reply teaches is persisted (synced) before anything it asks is done.
    const refused = await o.identity.admit(o.nameserver, reply ?? {});
    if (refused !== undefined) return refuse(refused);
    if (before === undefined && o.identity.cluster !== undefined) o.log.info({ cluster: o.identity.cluster, nameserver: o.nameserver }, 'joined cluster');
    if (refusing !== undefined) o.log.info({ nameserver: o.nameserver, cluster: o.identity.cluster }, 'name server of this cluster answers again; taking its commands');
    refusing = undefined;
    if (typeof reply.now === 'number') o.clock.observe(reply.now);
    for (const cmd of reply.commands ?? []) await execute(cmd);
    return true;
  };

  const beat = (): Promise<boolean> => {
    inFlight ??= beatOnce().finally(() => (inFlight = undefined));
    return inFlight;
  };

  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      void beat().finally(schedule);
    }, o.intervalMs);
    timer.unref();
  };
  void beat().finally(schedule);

  return {
    beat,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight?.catch(() => {});
    },
  };
}
