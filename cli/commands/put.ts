import { readFileSync } from 'node:fs';
import { loadConfig, opt } from '../../src/base/config.ts';
import { CLUSTER_CLIENT_OPTIONS, clusterClientFromConfig } from '../../src/clients/cluster-client.ts';
import { UgcfsError, isUgcfsError } from '../../src/base/errors.ts';
import { fileType, typeByName } from '../../origin/file-type.ts';
import type { CommandModule } from '../command.ts';

// The admin path stores bytes as given; the type only labels them, from the bytes or else
// the name, as the origin would serve them (the origin's upload path is the one that checks
// and strips).

const PUT_OPTIONS = {
  ...CLUSTER_CLIENT_OPTIONS,
  origin: opt.url('http://127.0.0.1:8080', 'origin base URL used to print each file\'s URL', { env: 'UGCFS_ORIGIN' }),
  owner: opt.string('admin', 'owner recorded with the files'),
};

const mod: CommandModule = {
  summary: 'store files in the cluster; prints one {file, fid, url, size, mime} per file with --json',
  usage: 'ugcfs put FILE... [--json] [--owner NAME] [--origin URL] [--nameserver URL]',
  async run(ctx) {
    const { config, flags, positionals } = loadConfig(PUT_OPTIONS, { argv: ctx.argv, env: ctx.env, allowFlags: ['--json'] });
    if (positionals.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'put needs at least one FILE');
    const client = clusterClientFromConfig(config);
    const json = flags.has('--json');
    let failed = 0;
    for (const path of positionals) {
      try {
        let data: Buffer;
        try {
          data = readFileSync(path);
        } catch (err) {
          throw new UgcfsError('UGCFS_ERR_BAD_REQUEST', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
        const { mime } = fileType(data, typeByName(path));
        const w = await client.write(data, { mime, owner: config.owner });
        const url = `${config.origin}/${w.fid}`;
        // `file` is the path as given, so a script putting many files knows which fid is which.
        ctx.stdout.write(json ? JSON.stringify({ file: path, fid: w.fid, url, size: w.size, mime }) + '\n' : `${path}\t${w.fid}\t${w.size} bytes\t${url}\n`);
      } catch (err) {
        failed++;
        const msg = isUgcfsError(err) ? `${err.message} (${err.code})` : (err as Error).message;
        ctx.stderr.write(`ugcfs put: ${path}: ${msg.split('\n')[0]}\n`);
      }
    }
    return failed > 0 ? 1 : 0;
  },
};
export const { summary, usage, run } = mod;
