import { readFileSync } from 'node:fs';
import type { CommandModule } from '../command.ts';

const mod: CommandModule = {
  summary: 'print the ugcfs version',
  usage: 'ugcfs version',
  async run(ctx) {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    ctx.stdout.write(`ugcfs ${pkg.version} (node ${process.version})\n`);
    return 0;
  },
};
export const { summary, usage, run } = mod;
