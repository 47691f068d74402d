// `ugcfs origin`: the caching image origin in front of a cluster.
import { describeOptions, loadConfig } from '../../src/config.ts';
import { onShutdown } from '../../src/http-server.ts';
import { createLogger } from '../../src/log.ts';
import { ORIGIN_OPTIONS } from '../../src/origin/config.ts';
import { startOrigin } from '../../src/origin/main.ts';
import { legacyResolverFor } from '../../src/origin/legacy-read-through.ts';
import type { CommandModule } from '../command.ts';

const mod: CommandModule = {
  summary: 'run the caching image origin (uploads, originals, resized variants)',
  usage: `ugcfs origin --nameserver URL [--host H] [--port 8080] [--cache-dir DIR] [--cache-bytes N] [--peers URL,URL] [--legacy-origin URL] [--legacy-import]

options:
${describeOptions(ORIGIN_OPTIONS)}
`,
  async run(ctx) {
    const { config } = loadConfig(ORIGIN_OPTIONS, { argv: ctx.argv, env: ctx.env });
    const log = createLogger({ name: 'origin', level: config.logLevel });
    // Legacy paths: the name server's table, plus read-through/import when configured.
    const server = await startOrigin(config, { log, legacyResolver: legacyResolverFor });
    log.info({ url: server.url }, 'listening');
    onShutdown(log, [() => server.close()]);
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
