import { describeOptions, loadConfig } from '../../src/base/config.ts';
import { createLogger } from '../../src/base/log.ts';
import type { CommandModule } from '../command.ts';
import { DATASERVER_OPTIONS } from '../../dataserver/config.ts';

const mod: CommandModule = {
  summary: 'run a data server (block files + LevelDB index)',
  usage: `ugcfs dataserver --data DIR --nameserver URL [--host H] [--port P] [--rack NAME] [--block-size BYTES] [--public-url URL]\n\n${describeOptions(DATASERVER_OPTIONS)}`,
  async run(ctx) {
    const { config, positionals } = loadConfig(DATASERVER_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) {
      ctx.stderr.write(`ugcfs dataserver: unexpected argument ${positionals[0]}\n`);
      return 2;
    }
    // The role's modules load only once its options are good: a refused start then takes under half the time.
    const [{ startDataserver }, { onShutdown }] = await Promise.all([import('../../dataserver/main.ts'), import('../../src/http/http-server.ts')]);
    const ds = await startDataserver(config);
    const log = createLogger({ name: `dataserver:${ds.id}`, level: config.logLevel });
    // The handler goes in before the 'listening' line: whoever reads that line may signal at once.
    onShutdown(log, [() => ds.close()]);
    log.info({ url: ds.url, id: ds.id }, 'listening');
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
