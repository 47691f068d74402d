import { loadConfig } from '../../src/base/config.ts';
import { CLUSTER_CLIENT_OPTIONS, clusterClientFromConfig } from '../../src/clients/cluster-client.ts';
import type { CommandModule } from '../command.ts';
import { fidArgument } from './stat.ts';

const mod: CommandModule = {
  summary: 'delete a file by fid (every replica; down replicas get it when back)',
  usage: 'ugcfs rm FID [--nameserver URL]',
  async run(ctx) {
    const { config, positionals } = loadConfig(CLUSTER_CLIENT_OPTIONS, { argv: ctx.argv, env: ctx.env });
    const fid = fidArgument(positionals, 'rm');
    await clusterClientFromConfig(config).delete(fid);
    ctx.stdout.write(`deleted ${fid}\n`);
    return 0;
  },
};
export const { summary, usage, run } = mod;
