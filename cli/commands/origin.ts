// `ugcfs origin`: the caching image origin in front of a cluster.
import { describeOptions, loadConfig } from '../../src/config.ts';
import { onShutdown } from '../../src/http-server.ts';
import { createLogger } from '../../src/log.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { startOrigin } from '../../origin/main.ts';
import { legacyResolverFor } from '../../origin/legacy-read-through.ts';
import { poolMember, removeStaleWorkerCaches, startPool, workerConfig } from '../../origin/worker-pool.ts';
import cluster from 'node:cluster';
import type { CommandModule } from '../command.ts';

const mod: CommandModule = {
  summary: 'run the caching image origin (uploads, originals, resized variants)',
  usage: `ugcfs origin --nameserver URL [--host H] [--port 8080] [--cache-dir DIR] [--cache-bytes N] [--peers URL,URL] [--legacy-origin URL] [--legacy-import]

options:
${describeOptions(ORIGIN_OPTIONS)}
`,
  async run(ctx) {
    const { config } = loadConfig(ORIGIN_OPTIONS, { argv: ctx.argv, env: ctx.env });
    const base = createLogger({ name: 'origin', level: config.logLevel });
    if (config.workers > 1 && cluster.isPrimary) {
      let pool;
      try {
        pool = await startPool(config, base);
      } catch (err) {
        // the worker has said why on its own stderr already
        ctx.stderr.write(`ugcfs origin: ${(err as Error).message}\n`);
        return (err as { exitCode?: number }).exitCode ?? 1;
      }
      base.info({ url: pool.url, workers: config.workers }, 'listening');
      onShutdown(base, [() => pool.close()]);
      return 'serving';
    }
    const member = poolMember();
    const log = member ? base.child({ worker: member.index }) : base;
    // One process after a run with --workers: its other workers' disk caches would only hold disk.
    if (!member) await removeStaleWorkerCaches(config.cacheDir, 1);
    // Legacy paths: the name server's table, plus read-through/import when configured.
    let server;
    try {
      server = await startOrigin(member ? workerConfig(config, member.index) : config, { log, legacyResolver: legacyResolverFor, pool: member });
    } catch (err) {
      // The pool's channel would keep a worker that cannot start alive: exit, once the CLI
      // has set the exit code for this error, so the primary can report it.
      if (member) setImmediate(() => process.exit());
      throw err;
    }
    const stop = onShutdown(log, [() => server.close()]);
    if (member) {
      member.onShutdown(stop);
      member.ready(server.url);
    } else log.info({ url: server.url }, 'listening');
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
