import { loadConfig } from '../../src/base/config.ts';
import { CLUSTER_CLIENT_OPTIONS, clusterClientFromConfig } from '../../src/clients/cluster-client.ts';
import { UgcfsError, isUgcfsError } from '../../src/base/errors.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { CommandModule } from '../command.ts';

/** The one positional fid, checked before any network call (a malformed one is bad usage). */
export function fidArgument(positionals: string[], command: string): string {
  if (positionals.length !== 1) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${command} takes exactly one file id`);
  const fid = positionals[0]!.replace(/^\/+/, '').replace(/\..*$/, '');
  try {
    decodeFid(fid);
  } catch (err) {
    if (isUgcfsError(err)) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', err.message);
    throw err;
  }
  return fid;
}

const mod: CommandModule = {
  summary: 'show where a file is stored',
  usage: 'ugcfs stat FID [--json] [--nameserver URL]',
  async run(ctx) {
    const { config, flags, positionals } = loadConfig(CLUSTER_CLIENT_OPTIONS, { argv: ctx.argv, env: ctx.env, allowFlags: ['--json'] });
    const fid = fidArgument(positionals, 'stat');
    const s = await clusterClientFromConfig(config).stat(fid);
    const out = { fid: s.fid, block: s.block, size: s.size, mime: s.mime, replicas: s.replicas };
    if (flags.has('--json')) ctx.stdout.write(JSON.stringify(out) + '\n');
    else ctx.stdout.write(`fid: ${out.fid}\nblock: ${out.block}\nsize: ${out.size}\nmime: ${out.mime}\nreplicas: ${out.replicas.join(', ')}\n`);
    return 0;
  },
};
export const { summary, usage, run } = mod;
