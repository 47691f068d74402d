// Bad usage of the server commands: every mistake is one line on stderr naming the option,
// exit code 2, and nothing starts. Also: the config file and environment are validated the
// same way as flags, and docs/CONFIGURATION.md matches the option tables.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { run, tempDir } from '../helpers/proc.ts';
import { CONFIG_DOC, renderConfigReference } from '../../deploy/config-reference.ts';
import { SERVER_OPTIONS } from '../../cli/commands/server.ts';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import { DATASERVER_OPTIONS } from '../../dataserver/config.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { flagName, loadConfig, type OptionTable } from '../../src/base/config.ts';
import type { UgcfsError } from '../../src/base/errors.ts';

const tmp = tempDir('ugcfs-usage-');
afterAll(() => tmp.cleanup());
const aFile = join(tmp.dir, 'a-file');
writeFileSync(aFile, 'not a directory');
const underFile = join(aFile, 'data');

/** stderr without Node's process-warning lines (fastify deprecation notices), which are not ours to print */
function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l));
}

// Credentials of the cases below; none may ever be printed.
const DO_NOT_PRINT = `tok-do-not-print-${randomBytes(16).toString('hex')}`;
/** 31 characters: one short of the rule */
const SHORT = randomBytes(16).toString('hex').slice(0, 31);
/** long enough, but the shape of the values shipped as examples */
const EXAMPLE = `change-me-${randomBytes(16).toString('hex')}`;
const NEVER_PRINTED = [DO_NOT_PRINT, SHORT, EXAMPLE];

// Each of these spawns a real `ugcfs` process (the exit code and stderr are the interface).
const cases: Array<{ args: string[]; env?: Record<string, string>; says: RegExp }> = [
  { args: ['server', '--bogus'], says: /^ugcfs server: unknown option --bogus$/ },
  { args: ['server', '--dataservers', '2', '--replicas', '3'], says: /^ugcfs server: option --replicas \(3\) must not exceed --dataservers \(2\)$/ },
  { args: ['server', '--data', underFile, '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0'], says: /^ugcfs server: option --data: .* is not a writable directory \(ENOTDIR\)$/ },
  { args: ['server'], env: { UGCFS_ORIGIN_PORT: 'eighty' }, says: /^ugcfs server: option --port \(from UGCFS_ORIGIN_PORT\) must be an integer/ },
  { args: ['nameserver', '--data', underFile, '--port', '0'], says: /^ugcfs nameserver: option --data: .* is not a writable directory \(ENOTDIR\)$/ },
  { args: ['nameserver', '--port', '0'], says: /^ugcfs nameserver: option --data is required, unless the state is in etcd \(--etcd\)$/ },
  { args: ['nameserver', '--port', '0', '--import-state', underFile], says: /^ugcfs nameserver: option --import-state needs --etcd/ },
  { args: ['dataserver', '--port', '0'], says: /^ugcfs dataserver: option --data is required/ },
  { args: ['dataserver', '--data', underFile, '--port', '0'], says: /^ugcfs dataserver: data directory .* is not a writable directory \(ENOTDIR\)$/ },
  { args: ['origin', '--port', '0', '--upload-tokens', DO_NOT_PRINT, '--cache-bytes', 'lots'], says: /^ugcfs origin: option --cache-bytes .*must be an integer/ },
  // No address is trusted: every role needs the cluster secret, on loopback too, and a
  // guessable one (short, or an example value) stops the start like a missing one.
  { args: ['nameserver', '--data', join(tmp.dir, 'ns-none'), '--port', '0'], env: { UGCFS_CLUSTER_SECRET: '' }, says: /^ugcfs nameserver: option --cluster-secret is required \(or set UGCFS_CLUSTER_SECRET\)$/ },
  { args: ['dataserver', '--data', join(tmp.dir, 'ds-none'), '--port', '0'], env: { UGCFS_CLUSTER_SECRET: '' }, says: /^ugcfs dataserver: option --cluster-secret is required \(or set UGCFS_CLUSTER_SECRET\)$/ },
  { args: ['nameserver', '--data', join(tmp.dir, 'ns-short'), '--port', '0'], env: { UGCFS_CLUSTER_SECRET: SHORT }, says: /^ugcfs nameserver: option --cluster-secret \(from UGCFS_CLUSTER_SECRET\) is shorter than 32 characters/ },
  { args: ['dataserver', '--data', join(tmp.dir, 'ds-ex'), '--port', '0', '--cluster-secret', EXAMPLE], says: /^ugcfs dataserver: option --cluster-secret \(from command line\) is an example value/ },
  { args: ['origin', '--host', '0.0.0.0', '--port', '0'], env: { UGCFS_CLUSTER_SECRET: 'change-me-cluster-secret' }, says: /^ugcfs origin: option --cluster-secret \(from UGCFS_CLUSTER_SECRET\) is shorter than 32 characters/ },
  { args: ['origin', '--port', '0', '--upload-tokens', `${DO_NOT_PRINT},tok-short`], says: /^ugcfs origin: option --upload-tokens \(from command line\) is shorter than 32 characters/ },
  { args: ['origin', '--port', '0'], env: { UGCFS_ADMIN_TOKEN: '<admin token, 32 characters or more, from .env>' }, says: /^ugcfs origin: option --admin-token \(from UGCFS_ADMIN_TOKEN\) is an example value/ },
  { args: ['server', '--data', join(tmp.dir, 'aio-short'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0'], env: { UGCFS_CLUSTER_SECRET: SHORT }, says: /^ugcfs server: option --cluster-secret \(from UGCFS_CLUSTER_SECRET\) is shorter than 32 characters/ },
];

describe.concurrent('bad usage of a server command gives one line and exit code 2', () => {
  it.each(cases)('ugcfs $args.0 $args.1 $args.2', async ({ args, env, says }) => {
    const r = await run(args, { env, timeoutMs: 60_000 });
    const lines = errorLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(says);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    for (const v of NEVER_PRINTED) expect(r.stderr).not.toContain(v);
  });

  it('checks a config file like flags: unknown keys are named', async () => {
    const unknown = join(tmp.dir, 'unknown.json');
    writeFileSync(unknown, JSON.stringify({ port: 0, colour: 'blue' }));
    const a = await run(['server', '--config', unknown]);
    expect(errorLines(a.stderr)).toEqual([`ugcfs server: option colour in config file ${unknown} is unknown`]);
    expect(a.code).toBe(2);
  });

  it('prints usage with every option for --help, exit 0', async () => {
    const r = await run(['server', '--help']);
    expect(r.code).toBe(0);
    for (const key of Object.keys(SERVER_OPTIONS)) expect(r.stdout).toContain(flagName(key));
  });
});

// The same validation in-process, for every role table (no process start needed).
describe('every role validates flags, environment and config file with a message naming the option', () => {
  const bad = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      expect((err as UgcfsError).code).toBe('UGCFS_ERR_BAD_USAGE');
      return (err as Error).message;
    }
    throw new Error('expected a usage error');
  };
  // Role tables need the cluster secret before anything else can be judged.
  const withSecret = (env: Record<string, string>) => ({ UGCFS_CLUSTER_SECRET: randomBytes(24).toString('hex'), ...env });
  it.each([
    [SERVER_OPTIONS, ['--port', '99999'], {}, /option --port \(from command line\) must be between 0 and 65535/],
    [SERVER_OPTIONS, ['--port'], {}, /option --port needs a value/],
    [NAMESERVER_OPTIONS, ['--lease-ms', '500'], {}, /option --lease-ms .*must be between 1000/],
    [NAMESERVER_OPTIONS, ['--data', 'x', '--replicas', 'two'], {}, /option --replicas .*must be an integer/],
    [NAMESERVER_OPTIONS, ['--data', 'x', '--log-level', 'loud'], {}, /option --log-level .*must be one of/],
    [DATASERVER_OPTIONS, ['--data', 'x', '--nameserver', 'ftp://x'], {}, /option --nameserver .*http\(s\) URL/],
    [DATASERVER_OPTIONS, ['--data', 'x'], { UGCFS_FSYNC: 'perhaps' }, /option --fsync \(from UGCFS_FSYNC\) must be true or false/],
    [ORIGIN_OPTIONS, ['--port', 'abc'], {}, /option --port .*must be an integer/],
    [ORIGIN_OPTIONS, ['--config', join(tmp.dir, 'missing.json')], {}, /option --config: cannot read JSON config file/],
    [NAMESERVER_OPTIONS, ['--data', 'x'], { UGCFS_CLUSTER_SECRET: '' }, /^option --cluster-secret is required \(or set UGCFS_CLUSTER_SECRET\)$/],
    [DATASERVER_OPTIONS, ['--data', 'x', '--cluster-secret', 'a'.repeat(31)], {}, /^option --cluster-secret \(from command line\) is shorter than 32 characters/],
    [ORIGIN_OPTIONS, [], { UGCFS_UPLOAD_TOKENS: `${'u'.repeat(32)},change-me-upload-token-${'0'.repeat(16)}` }, /^option --upload-tokens \(from UGCFS_UPLOAD_TOKENS\) is an example value/],
  ] as Array<[OptionTable, string[], Record<string, string>, RegExp]>)('%#', (table, argv, env, says) => {
    expect(bad(() => loadConfig(table, { argv, env: withSecret(env) }))).toMatch(says);
  });

  it('takes a cluster secret of exactly 32 characters', () => {
    const secret = randomBytes(16).toString('hex');
    expect(loadConfig(NAMESERVER_OPTIONS, { argv: ['--data', 'x'], env: { UGCFS_CLUSTER_SECRET: secret } }).config.clusterSecret).toBe(secret);
  });

  it('takes values from a config file, below env and flags', () => {
    const file = join(tmp.dir, 'ds.json');
    writeFileSync(file, JSON.stringify({ data: '/srv/ds', rack: 'r9', port: 7100, blockSize: '64M' }));
    const { config } = loadConfig(DATASERVER_OPTIONS, { argv: ['--config', file, '--port', '7200'], env: withSecret({ UGCFS_RACK: 'r8' }) });
    expect([config.data, config.rack, config.port, config.blockSize]).toEqual(['/srv/ds', 'r8', 7200, 64 * 1024 * 1024]);
    writeFileSync(file, JSON.stringify({ replicas: 0 }));
    expect(bad(() => loadConfig(NAMESERVER_OPTIONS, { argv: ['--data', 'x', '--config', file], env: withSecret({}) }))).toBe('option --replicas (from config file) must be between 1 and 8, got 0');
  });
});

describe('docs/CONFIGURATION.md', () => {
  it('is generated from the current option tables (run `npm run docs:config` after changing one)', () => {
    expect(readFileSync(CONFIG_DOC, 'utf8')).toBe(renderConfigReference());
  });
});
