// Heartbeats to the name server: registration, block reports and free space, every
// interval. The data server works without a name server (for tests and first boot), so a
// failed beat is logged once per outage and retried; commands in the reply are executed.
import { statfs } from 'node:fs/promises';
import { callJson } from '../src/http-client.ts';
import { isUgcfsError } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import type { Metrics } from '../src/metrics.ts';
import { NS_ROUTES, type DsCommand, type Heartbeat, type HeartbeatReply } from '../src/protocol.ts';
import type { BlockStore } from './block-store.ts';

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

export function startHeartbeat(o: HeartbeatOptions): HeartbeatLoop {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<boolean> | undefined;
  let failing = false;

  const execute = async (cmd: DsCommand): Promise<void> => {
    try {
      if (cmd.kind === 'delete-block') {
        if (o.store.has(cmd.block)) await o.store.deleteBlock(cmd.block);
        o.log.info({ block: cmd.block, reason: cmd.reason }, 'deleted block on name server request');
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
    try {
      const free = await freeBytes(o.dataDir);
      o.metrics.freeBytes.set(free);
      o.store.updateGauges();
      const hb: Heartbeat = {
        id: o.id,
        url: o.url,
        rack: o.rack,
        freeBytes: free,
        usedBytes: o.store.usedBytes(),
        blockSize: o.blockSize,
        blocks: o.store.reports({ completeOnly: true }),
      };
      const reply = await callJson<HeartbeatReply>(o.nameserver + NS_ROUTES.heartbeat, { body: hb, secret: o.secret, timeoutMs: Math.max(2000, o.intervalMs * 2) });
      if (failing) o.log.info({ nameserver: o.nameserver }, 'name server reachable again');
      failing = false;
      for (const cmd of reply?.commands ?? []) await execute(cmd);
      return true;
    } catch (err) {
      if (!failing) o.log.warn({ nameserver: o.nameserver, err: (err as Error).message }, 'heartbeat failed; will keep retrying');
      failing = true;
      return false;
    }
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
