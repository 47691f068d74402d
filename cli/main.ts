// `ugcfs`: one command for every server role and the admin work.
import { readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import { isUgcfsError } from '../src/base/errors.ts';
import { EXIT, type CommandContext, type CommandModule } from './command.ts';

const here = dirname(fileURLToPath(import.meta.url));

function commandNames(): string[] {
  return readdirSync(join(here, 'commands')).filter((f) => f.endsWith('.ts')).map((f) => f.slice(0, -3)).sort();
}

async function load(name: string): Promise<CommandModule | undefined> {
  if (!/^[a-z][a-z-]*$/.test(name) || !commandNames().includes(name)) return undefined;
  return (await import(pathToFileURL(join(here, 'commands', `${name}.ts`)).href)) as CommandModule;
}

async function help(ctx: CommandContext): Promise<void> {
  const lines = ['usage: ugcfs <command> [options]', '', 'commands:'];
  for (const n of commandNames()) {
    const m = await load(n);
    if (m) lines.push(`  ${n.padEnd(12)} ${m.summary}`);
  }
  lines.push('', 'Run `ugcfs <command> --help` for its options.');
  ctx.stdout.write(lines.join('\n') + '\n');
}

export async function main(argv: string[], env: Record<string, string | undefined>): Promise<number | 'serving'> {
  const ctx: CommandContext = { argv: argv.slice(1), env, stdout: process.stdout, stderr: process.stderr };
  const name = argv[0];
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    await help(ctx);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const mod = await load(name);
  if (!mod) {
    ctx.stderr.write(`ugcfs: unknown command '${name}' (try ugcfs --help)\n`);
    return EXIT.usage;
  }
  if (ctx.argv.includes('--help') || ctx.argv.includes('-h')) {
    ctx.stdout.write(mod.usage.trimEnd() + '\n');
    return EXIT.ok;
  }
  try {
    return await mod.run(ctx);
  } catch (err) {
    if (isUgcfsError(err, 'UGCFS_ERR_BAD_USAGE')) {
      ctx.stderr.write(`ugcfs ${name}: ${err.message}\n`);
      return EXIT.usage;
    }
    const msg = isUgcfsError(err) ? `${err.message} (${err.code})` : (err as Error)?.message ?? String(err);
    ctx.stderr.write(`ugcfs ${name}: ${msg.split('\n')[0]}\n`);
    return EXIT.failed;
  }
}

const result = await main(process.argv.slice(2), process.env);
if (result !== 'serving') {
  process.exitCode = result;
}
