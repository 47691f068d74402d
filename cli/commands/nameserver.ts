import { describeOptions, loadConfig } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import { createLogger } from '../../src/base/log.ts';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import type { CommandModule } from '../command.ts';

const mod: CommandModule = {
  summary: 'run the name server (registry, block map, assignment, repair)',
  usage: `ugcfs nameserver --data DIR [--host H] [--port P] [--replicas N] [--heartbeat-ms N] [--dead-after-ms N] [--repair-delay-ms N]\n       ugcfs nameserver --etcd URL[,URL...] [--etcd-prefix /ugcfs/<cluster>] --advertise-url URL [--lease-ms 5000] [--import-state DIR] [...]\n\noptions:\n${describeOptions(NAMESERVER_OPTIONS)}`,
  async run(ctx) {
    const { config, positionals } = loadConfig(NAMESERVER_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    // The role's modules load only once its options are good: a refused start then takes under half the time.
    const [{ startNameserver }, { onShutdown }] = await Promise.all([import('../../nameserver/main.ts'), import('../../src/http/http-server.ts')]);
    const log = createLogger({ name: 'nameserver', level: config.logLevel });
    const server = await startNameserver(config, { log });
    log.info({ url: server.url, replicas: config.replicas, startedAt: server.instance.ctx.startedAt, repairsFrom: server.instance.ctx.startedAt + config.startupGraceMs }, 'listening');
    onShutdown(log, [() => server.close()]);
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
