// The bench scripts' flags (bench/lib/flags.ts) are checked before anything starts: a bad
// value is one sentence naming the flag as typed, and exit code 2. Unit tests of the parser,
// then real scripts started with bad flags (they exit before starting any server), the
// commands docs/BENCHMARKS.md publishes (still accepted), and the runner's free-disk preflight.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlagError, helpText, readFlags } from '../../bench/lib/flags.ts';
import { freeDiskMessage } from '../../bench/lib/preflight.ts';
import { ROOT } from '../helpers/proc.ts';
import { trackChild } from '../helpers/ready-process.ts';

const parse = (argv: string[]) =>
  readFlags(
    {
      quick: { kind: 'bool', help: 'smoke check' },
      files: { kind: 'int', default: 3000, quick: 400, min: 1, help: 'files' },
      blockMib: { kind: 'int', default: 256, min: 1, help: 'block size in MiB' },
      ratio: { kind: 'number', default: 0.5, min: 0, max: 1, help: 'a fraction' },
      size: { kind: 'size', default: 20480, min: 1, help: 'bytes' },
      replicas: { kind: 'ints', default: [1, 2, 3], min: 1, max: 3, help: 'replica counts' },
      fsync: { kind: 'list', default: ['on', 'off'], choices: ['on', 'off'], help: 'fsync modes' },
      profile: { kind: 'string', help: 'profile dir' },
      mode: { kind: 'string', default: 'false', choices: ['true', 'false'], help: 'passed on' },
    },
    argv,
  );

/** The sentence readFlags refuses argv with. */
function refusal(argv: string[], commands?: string[]): string {
  try {
    if (commands) readFlags({ dir: { kind: 'string', required: true, help: 'd' } }, argv, commands);
    else parse(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(FlagError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(argv)}`);
}

describe('bench flag parser', () => {
  it('gives the declared defaults, and the --quick ones under --quick', () => {
    expect(parse([])).toEqual({ command: undefined, quick: false, files: 3000, blockMib: 256, ratio: 0.5, size: 20480, replicas: [1, 2, 3], fsync: ['on', 'off'], profile: undefined, mode: 'false' });
    expect(parse(['--quick']).files).toBe(400);
    expect(parse(['--quick']).blockMib).toBe(256);
    expect(parse(['--quick', '--files', '7']).files).toBe(7);
  });

  it('reads good values, with a space or an =', () => {
    const v = parse(['--files', '10', '--block-mib=64', '--ratio', '0.25', '--replicas', '2,3', '--fsync', 'off', '--profile', '/tmp/p', '--mode=true', '--quick=false']);
    expect(v).toMatchObject({ files: 10, blockMib: 64, ratio: 0.25, replicas: [2, 3], fsync: ['off'], profile: '/tmp/p', mode: 'true', quick: false });
    expect(parse(['--files', '1e3']).files).toBe(1000);
    expect(parse(['--files', '5', '--files', '6']).files).toBe(6);
  });

  it('reads sizes as plain bytes or with the servers\' units', () => {
    expect(parse(['--size', '64k']).size).toBe(65536);
    expect(parse(['--size', '1.5M']).size).toBe(1572864);
    expect(parse(['--size', '1G']).size).toBe(2 ** 30);
    expect(parse(['--size', '4294967296']).size).toBe(4294967296);
  });

  // Each refusal names the flag as it was typed and says what it takes.
  const REFUSALS: [string[], string][] = [
    [['--block-mib', 'abc'], '--block-mib must be a whole number >= 1, got "abc"'],
    [['--block-mib=abc'], '--block-mib must be a whole number >= 1, got "abc"'],
    [['--block-mib', '0'], '--block-mib must be a whole number >= 1, got "0"'],
    [['--files', '1.5'], '--files must be a whole number >= 1, got "1.5"'],
    [['--files', ''], '--files must be a whole number >= 1, got ""'],
    [['--ratio', 'half'], '--ratio must be a number from 0 to 1, got "half"'],
    [['--ratio', '1.01'], '--ratio must be a number from 0 to 1, got "1.01"'],
    [['--size', '12q'], '--size must be a size in bytes >= 1 (a number, or with a unit: 64k, 256M, 1G), got "12q"'],
    [['--size', '0.5'], '--size must be a size in bytes >= 1 (a number, or with a unit: 64k, 256M, 1G), got "0.5"'],
    [['--replicas', '1,4'], '--replicas must be a comma-separated list of whole numbers from 1 to 3, got "1,4"'],
    [['--replicas', '1,x'], '--replicas must be a comma-separated list of whole numbers from 1 to 3, got "1,x"'],
    [['--fsync', 'on,of'], '--fsync must be a comma-separated list of on, off, got "on,of"'],
    [['--mode', 'on'], '--mode must be one of true, false, got "on"'],
    [['--quick=maybe'], '--quick must be given alone (or =true / =false), got "maybe"'],
    [['--blok-mib', '3'], 'unknown flag --blok-mib'],
    [['-f', '3'], 'unknown flag -f'],
    [['--files'], '--files needs a value: a whole number >= 1'],
    [['--files', '--quick'], '--files needs a value: a whole number >= 1'],
    [['--profile', '--quick'], '--profile needs a value (for one that starts with --, write --profile=VALUE)'],
    [['--quick', '5'], 'unexpected argument "5"; every value follows its flag'],
  ];
  it.each(REFUSALS)('refuses %j', (argv, message) => {
    expect(refusal(argv)).toBe(message);
  });

  it('takes a value starting with -- that is not one of its flags', () => {
    expect(parse(['--profile', '--elsewhere 2']).profile).toBe('--elsewhere 2');
  });

  it('checks required flags and the leading command word', () => {
    expect(readFlags({ dir: { kind: 'string', required: true, help: 'd' } }, ['fill', '--dir', 'D'], ['fill', 'reopen'])).toEqual({ command: 'fill', dir: 'D' });
    expect(refusal(['fill'], ['fill', 'reopen'])).toBe('--dir is required');
    expect(refusal(['--dir', 'D'], ['fill', 'reopen'])).toBe('the first argument must be one of fill, reopen');
    expect(refusal(['grow', '--dir', 'D'], ['fill', 'reopen'])).toBe('the first argument must be one of fill, reopen, got "grow"');
    expect(refusal(['fill', 'again', '--dir', 'D'], ['fill', 'reopen'])).toBe('unexpected argument "again"; every value follows its flag');
  });

  it('lists every flag with its defaults in --help', () => {
    const text = helpText({ files: { kind: 'int', default: 3000, quick: 400, help: 'files written' }, replicas: { kind: 'ints', default: [1, 2], help: 'replica counts' } }, { name: 'x', run: 'node x.ts' });
    expect(text.split('\n')).toEqual([
      'usage: node x.ts [--files N] [--replicas 1,2]',
      `  ${'--files'.padEnd(18)} files written (default 3000; 400 with --quick)`,
      `  ${'--replicas'.padEnd(18)} replica counts (default 1,2)`,
    ]);
  });
});

describe('free-disk preflight', () => {
  it('passes with room and names the directory, the free and the needed GiB without', async () => {
    expect(await freeDiskMessage(tmpdir(), 0)).toBe('');
    const msg = await freeDiskMessage(tmpdir(), 1e9);
    expect(msg).toMatch(new RegExp(`^bench: ${tmpdir()}, .* has \\d+\\.\\d GiB free and the bench needs 1000000000 GiB; .*--min-free-gib N\\.$`));
  });
});

/** Runs a bench script to its exit; SIGTERM after timeoutMs (the runner kills its children on it). */
function runScript(script: string, args: string[], timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'run-ts.mjs'), script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}

describe('bench scripts with bad flags', () => {
  it('cluster-write refuses --block-mib abc before starting a cluster', async () => {
    const r = await runScript('bench/cluster-write.ts', ['--block-mib', 'abc']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('cluster-write: --block-mib must be a whole number >= 1, got "abc"\nusage: node bin/run-ts.mjs bench/cluster-write.ts [--quick] [--files N] [--concurrency N] [--replicas 1,2,3] [--fsync on,off] [--assign-batch N] [--write-batch N] [--block-mib N]\n');
    expect(r.stdout).toBe('');
  });

  it('a peer refuses to start without its required flag', async () => {
    const r = await runScript('bench/peers/bare-node.ts', ['--dir', tmpdir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bare-node: --pack is required');
  });

  it('the runner refuses --runs 0 and an unknown section', async () => {
    const runs = await runScript('bench/run.ts', ['--runs', '0']);
    expect(runs.code).toBe(2);
    expect(runs.stderr).toMatch(/^bench: --runs must be a whole number >= 1, got "0"\nusage: npm run bench -- /);
    const only = await runScript('bench/run.ts', ['--only', 'reads,nosuch']);
    expect(only.code).toBe(2);
    expect(only.stderr).toContain('bench: --only must be a comma-separated list of reads, writes, images, scale, recovery, profile, external, got "reads,nosuch"');
  });

  it('the runner refuses to start with less free disk than --min-free-gib', async () => {
    const r = await runScript('bench/run.ts', ['--min-free-gib', '1e9', '--only', 'reads', '--no-doc'], 30_000);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`bench: ${tmpdir()}, where the sections write their scratch work, has `);
    expect(r.stderr).toContain('the bench needs 1000000000 GiB');
  });
});

describe('published bench commands', () => {
  // Each command with an unknown flag appended: refused for that flag alone means every
  // flag before it was accepted, and nothing runs.
  const PREFIXES = ['dataserver-', 'cluster-', 'repair-', 'origin-', 'migrate-'];
  const external = readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts') && PREFIXES.some((p) => f.startsWith(p)));
  const commands: [string, string[]][] = [
    ['bench/run.ts', ['--only', 'reads,writes', '--runs', '5', '--duration', '10', '--wait-quiet', '--quick', '--external-full', '--no-doc']],
    ['bench/scale-generate.ts', 'fill --dir DSDIR --block 1 --count 10000 --size 1024 --block-size 4294967296 --sample 20000 --out FIDS'.split(' ')],
    ['bench/scale-generate.ts', 'reopen --dir DSDIR --block-size 4294967296'.split(' ')],
    ['bench/profile-write-split.ts', '--replicas 2 --fsync false --count 50'.split(' ')],
    ['bench/peers/bare-sharp.ts', '--dir PHOTOS --jobs 2 --threads 1'.split(' ')],
    ['bench/peers/bare-node.ts', '--dir FILES --pack PACK2 --sync-reads'.split(' ')],
    ['bench/peers/bare-fastify.ts', '--dir FILES'.split(' ')],
    ...external.map((f): [string, string[]] => [`bench/${f}`, ['--quick']]),
  ];

  it('are all still accepted', async () => {
    expect(external.length).toBeGreaterThanOrEqual(10);
    const refused: string[] = [];
    // two at a time: the machine has 2 cores
    for (let i = 0; i < commands.length; i += 2) {
      await Promise.all(commands.slice(i, i + 2).map(async ([script, args]) => {
        const r = await runScript(script, [...args, '--zzz-end']);
        if (r.code !== 2 || !r.stderr.includes(': unknown flag --zzz-end\n')) refused.push(`${script} ${args.join(' ')}: exit ${r.code} ${r.stderr.trim()}`);
      }));
    }
    expect(refused).toEqual([]);
  });
});
