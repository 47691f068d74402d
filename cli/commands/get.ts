import { writeFileSync } from 'node:fs';
import { loadConfig } from '../../src/base/config.ts';
import { CLUSTER_CLIENT_OPTIONS, clusterClientFromConfig } from '../../src/clients/cluster-client.ts';
import type { CommandModule } from '../command.ts';
import { fidArgument } from './stat.ts';

const mod: CommandModule = {
  summary: 'fetch a file by fid (to stdout, or -o FILE; -o - is stdout too)',
  usage: 'ugcfs get FID [-o FILE|-] [--nameserver URL]',
  async run(ctx) {
    const { config, flags, positionals } = loadConfig(CLUSTER_CLIENT_OPTIONS, { argv: ctx.argv, env: ctx.env, allowFlags: ['-o'] });
    const fid = fidArgument(positionals, 'get');
    const file = await clusterClientFromConfig(config).read(fid);
    const out = flags.get('-o');
    // `-o -` is stdout, as for curl and most tools; a file really called "-" is `-o ./-`.
    if (typeof out === 'string' && out !== '-') writeFileSync(out, file.data);
    else await new Promise<void>((res, rej) => ctx.stdout.write(file.data, (err) => (err ? rej(err) : res())));
    return 0;
  },
};
export const { summary, usage, run } = mod;
