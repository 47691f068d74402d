// `ugcfs origin`: the caching image origin in front of a cluster. What the origin is made of
// (legacy read-through, the peer ring, the worker pool) is startOrigin's, from the config;
// this command only owns the process: exit codes, signals, and the `listening` line.
import { describeOptions, loadConfig } from '../../src/base/config.ts';
import { createLogger } from '../../src/base/log.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import type { RunningOrigin } from '../../origin/main.ts';
import type { CommandModule } from '../command.ts';

const mod: CommandModule = {
  summary: 'run the caching image origin (uploads, originals, resized variants)',
  usage: `ugcfs origin --nameserver URL [--host H] [--port 8080] [--cache-dir DIR] [--cache-bytes N] [--peers URL,URL] [--legacy-origin URL] [--legacy-import]

options:
${describeOptions(ORIGIN_OPTIONS)}
`,
  async run(ctx) {
    const { config } = loadConfig(ORIGIN_OPTIONS, { argv: ctx.argv, env: ctx.env });
    // The role's modules load only once its options are good: a refused start then takes under half the time.
    const [{ startOrigin }, { inPool }, { onShutdown }] = await Promise.all([import('../../origin/main.ts'), import('../../origin/worker-pool.ts'), import('../../src/http/http-server.ts')]);
    const log = createLogger({ name: 'origin', level: config.logLevel });
    let server: RunningOrigin;
    try {
      server = await startOrigin(config, { log });
    } catch (err) {
      const exitCode = (err as { exitCode?: number }).exitCode;
      if (exitCode !== undefined) {
        // The pool's primary: a worker failed to start and has said why on its own stderr already.
        ctx.stderr.write(`ugcfs origin: ${(err as Error).message}\n`);
        return exitCode;
      }
      // The pool's channel would keep a worker that cannot start alive: exit, once the CLI
      // has set the exit code for this error, so the primary can report it.
      if (inPool()) setImmediate(() => process.exit());
      throw err;
    }
    const stop = onShutdown(server.worker ? log.child({ worker: server.worker.index }) : log, [() => server.close()]);
    if (server.worker) {
      server.worker.onShutdown(stop);
      server.worker.ready(server.url);
    } else log.info({ url: server.url, ...(server.workers ? { workers: server.workers } : {}) }, 'listening');
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
