// The bench scripts' flags (bench/lib/flags.ts, on src/base/config.ts's option machinery) are
// checked before anything starts: a bad value is one sentence naming the flag, the usage line,
// and exit code 2. Unit tests of the reader, then real scripts started with bad flags (they
// exit before starting any server), the commands docs/BENCHMARKS.md publishes (still
// accepted), and the runner's free-disk preflight.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FlagError, helpText, ints, readFlags } from '../../bench/lib/flags.ts';
import { freeDiskMessage } from '../../bench/lib/preflight.ts';
import { opt } from '../../src/base/config.ts';
import { ROOT } from '../helpers/proc.ts';
import { trackChild } from '../helpers/ready-process.ts';

const TABLE = {
  quick: opt.bool(false, 'smoke check'),
  files: opt.int(3000, 'files', { min: 1 }),
  blockMib: opt.int(256, 'block size in MiB', { min: 1 }),
  ratio: opt.number(0.5, 'a fraction', { min: 0, max: 1 }),
  size: opt.int(20480, 'bytes', { min: 1 }),
  replicas: ints([1, 2, 3], 'replica counts', { min: 1, max: 3 }),
  fsync: opt.list(['on', 'off'], 'fsync modes', { choices: ['on', 'off'] }),
  profile: opt.string('', 'profile dir'),
  mode: opt.string('false', 'passed on', { choices: ['true', 'false'] }),
};
const parse = (argv: string[]) => readFlags(TABLE, argv, { quick: { files: 400 } });
const DIR = { dir: opt.string('', 'd', { required: true }) };

/** The sentence readFlags refuses argv with. */
function refusal(argv: string[], commands?: string[]): string {
  try {
    if (commands) readFlags(DIR, argv, { commands });
    else parse(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(FlagError);
    return (err as Error).message;
  }
  throw new Error(`accepted ${JSON.stringify(argv)}`);
}

describe('bench flag reader', () => {
  it('gives the declared defaults, and the --quick ones under --quick', () => {
    expect(parse([])).toEqual({ command: undefined, quick: false, files: 3000, blockMib: 256, ratio: 0.5, size: 20480, replicas: [1, 2, 3], fsync: ['on', 'off'], profile: '', mode: 'false' });
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

  it("reads sizes as plain bytes or with the servers' units", () => {
    expect(parse(['--size', '64k']).size).toBe(65536);
    expect(parse(['--size', '1.5M']).size).toBe(1572864);
    expect(parse(['--size', '1G']).size).toBe(2 ** 30);
    expect(parse(['--size', '4294967296']).size).toBe(4294967296);
  });

  // Each refusal names the flag and says what it takes (src/base/config.ts's sentences, and the
  // bench's own for what that file has not: lists of numbers, list choices, stray words).
  const REFUSALS: [string[], string][] = [
    [['--block-mib', 'abc'], 'option --block-mib (from command line) must be an integer, got "abc"'],
    [['--block-mib=abc'], 'option --block-mib (from command line) must be an integer, got "abc"'],
    [['--block-mib', '0'], 'option --block-mib (from command line) must be between 1 and inf, got "0"'],
    [['--files', '1.5'], 'option --files (from command line) must be an integer, got "1.5"'],
    [['--files', ''], 'option --files (from command line) must be an integer, got ""'],
    [['--ratio', 'half'], 'option --ratio (from command line) must be a number, got "half"'],
    [['--ratio', '1.01'], 'option --ratio (from command line) must be between 0 and 1, got "1.01"'],
    [['--size', '12q'], 'option --size (from command line) must be an integer, got "12q"'],
    [['--size', '0.5'], 'option --size (from command line) must be an integer, got "0.5"'],
    [['--replicas', '1,4'], 'option --replicas (from command line) must be a comma-separated list of whole numbers between 1 and 3, got "1,4"'],
    [['--replicas', '1,x'], 'option --replicas (from command line) must be a comma-separated list of whole numbers between 1 and 3, got "1,x"'],
    [['--fsync', 'on,of'], 'option --fsync (from command line) must be a comma-separated list of on, off, got "on,of"'],
    [['--fsync', ''], 'option --fsync (from command line) must be a comma-separated list of on, off, got ""'],
    [['--mode', 'on'], 'option --mode (from command line) must be one of true, false, got "on"'],
    [['--quick=maybe'], 'option --quick (from command line) must be true or false, got "maybe"'],
    [['--blok-mib', '3'], 'unknown option --blok-mib'],
    [['-f', '3'], 'unknown option -f'],
    [['--config', 'x.json'], 'unknown option --config'],
    [['--files'], 'option --files needs a value'],
    [['--files', '--quick'], 'option --files needs a value'],
    [['--profile', '--quick'], 'option --profile needs a value'],
    [['--quick', '5'], 'unexpected argument "5"; every value follows its flag'],
    [['--profile', '--elsewhere 2'], 'option --profile needs a value (for one that starts with --, write --profile=VALUE)'],
  ];
  it.each(REFUSALS)('refuses %j', (argv, message) => {
    expect(refusal(argv)).toBe(message);
  });

  it('takes a value starting with -- when written with =', () => {
    expect(parse(['--profile=--elsewhere 2']).profile).toBe('--elsewhere 2');
  });

  it('checks required flags and the leading command word', () => {
    expect(readFlags(DIR, ['fill', '--dir', 'D'], { commands: ['fill', 'reopen'] })).toEqual({ command: 'fill', dir: 'D' });
    expect(refusal(['fill'], ['fill', 'reopen'])).toBe('option --dir is required');
    expect(refusal(['--dir', 'D'], ['fill', 'reopen'])).toBe('the first argument must be one of fill, reopen');
    expect(refusal(['grow', '--dir', 'D'], ['fill', 'reopen'])).toBe('the first argument must be one of fill, reopen, got "grow"');
    expect(refusal(['fill', 'again', '--dir', 'D'], ['fill', 'reopen'])).toBe('unexpected argument "again"; every value follows its flag');
  });

  it('lists every flag with its defaults in --help, and what --quick changes', () => {
    const text = helpText({ files: opt.int(3000, 'files written'), replicas: ints([1, 2], 'replica counts') }, { name: 'x', run: 'node x.ts' }, { quick: { files: 400 } });
    expect(text.split('\n')).toEqual([
      'usage: node x.ts [--files N] [--replicas 1,2]',
      `  ${'--files'.padEnd(22)} files written (default 3000)`,
      `  ${'--replicas'.padEnd(22)} replica counts (default [1,2])`,
      '  with --quick: --files 400',
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
    expect(r.stderr).toBe('cluster-write: option --block-mib (from command line) must be an integer, got "abc"\nusage: node bin/run-ts.mjs bench/cluster-write.ts [--quick] [--files N] [--concurrency N] [--replicas 1,2,3] [--fsync on,off] [--assign-batch N] [--write-batch N] [--block-mib N]\n');
    expect(r.stdout).toBe('');
  });

  it('a peer refuses to start without its required flag', async () => {
    const r = await runScript('bench/peers/bare-node.ts', ['--dir', tmpdir()]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bare-node: option --pack is required');
  });

  it('the runner refuses a lease under etcd\'s second for the ha section', async () => {
    const r = await runScript('bench/run.ts', ['--only', 'ha', '--ha-lease-ms', '5000,500']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bench: option --ha-lease-ms (from command line) must be a comma-separated list of whole numbers between 1000 and inf, got "5000,500"');
  });

  it('the runner refuses --runs 0 and an unknown section', async () => {
    const runs = await runScript('bench/run.ts', ['--runs', '0']);
    expect(runs.code).toBe(2);
    expect(runs.stderr).toMatch(/^bench: option --runs \(from command line\) must be between 1 and inf, got "0"\nusage: npm run bench -- /);
    const only = await runScript('bench/run.ts', ['--only', 'reads,nosuch']);
    expect(only.code).toBe(2);
    expect(only.stderr).toContain('bench: option --only (from command line) must be a comma-separated list of reads, writes, images, scale, recovery, ha, ns-scale, profile, external, got "reads,nosuch"');
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
    ['bench/run.ts', ['--only', 'ha', '--ha-kills', '10', '--ha-lease-ms', '5000,2000', '--etcd-records', '100000', '--no-doc']],
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
        if (r.code !== 2 || !r.stderr.includes(': unknown option --zzz-end\n')) refused.push(`${script} ${args.join(' ')}: exit ${r.code} ${r.stderr.trim()}`);
      }));
    }
    expect(refused).toEqual([]);
  });
});
