// Every option of a role reaches it through `ugcfs server` (cli/commands/server.ts,
// ALL_IN_ONE_ROLES): each role's table is either passed through by its own flag, key and
// environment variable, or decided by the all-in-one, and nothing else; a role's command
// carries what was given (a secret in its environment). Then a real all-in-one started with
// options of each role: the origin refuses a type --upload-types leaves out and purges the
// --purge-edges it was given, with --purge-token; the name and data servers run with theirs.
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, type OptionTable } from '../../src/base/config.ts';
import { ALL_IN_ONE_ROLES, SERVER_OPTIONS, SERVER_OWN_OPTIONS } from '../../cli/commands/server.ts';
import { passedValues, roleCommand } from '../../cli/role-process.ts';
import { CORPUS, waitFor } from '../helpers/proc.ts';
import { startAllInOne, type AllInOne } from './all-in-one.ts';

const roles = Object.entries(ALL_IN_ONE_ROLES) as Array<[keyof typeof ALL_IN_ONE_ROLES, (typeof ALL_IN_ONE_ROLES)[keyof typeof ALL_IN_ONE_ROLES]]>;
const server = SERVER_OPTIONS as OptionTable;

describe('the all-in-one option table', () => {
  it("takes every option of each role's table that it does not decide, and no other", () => {
    for (const [role, r] of roles) {
      const table = r.table as OptionTable;
      const decided = r.decided as readonly string[];
      for (const key of Object.keys(table)) {
        if (decided.includes(key)) continue;
        expect(server[key], `${role} --${key}`).toBeDefined();
        expect(key in SERVER_OWN_OPTIONS, `${role} ${key} is passed through, not the server's own`).toBe(false);
        // the same flag means the same thing: same kind, same environment variable
        expect([server[key]!.kind, server[key]!.env], `${role} ${key}`).toEqual([table[key]!.kind, table[key]!.env]);
      }
    }
    const passed = new Set(roles.flatMap(([, r]) => Object.keys(r.options)));
    for (const key of Object.keys(server)) expect(passed.has(key) || key in SERVER_OWN_OPTIONS, key).toBe(true);
  });

  it('gives an option several roles take one default, and every option its own environment variable', () => {
    for (const key of Object.keys(server)) {
      const defaults = new Set(roles.filter(([, r]) => key in r.options).map(([, r]) => JSON.stringify((r.table as OptionTable)[key]!.default)));
      expect(defaults.size, key).toBeLessThanOrEqual(1);
    }
    const envs = Object.values(server).flatMap((s) => (s.env ? [s.env] : []));
    expect(new Set(envs).size).toBe(envs.length);
  });

  it("puts what was given on the role's command line, a secret in its environment, defaults nowhere", () => {
    const token = 'purge-token-' + 'x'.repeat(32);
    const { config } = loadConfig(SERVER_OPTIONS, {
      argv: ['--upload-types', 'image/png', '--purge-edges', 'http://127.0.0.1:6081', '--purge-queue', '10', '--read-buffer-pool-bytes', '0', '--repair-delay-ms', '5000', '--log-level', 'warn'],
      env: { UGCFS_PURGE_TOKEN: token },
    });
    const origin = roleCommand('origin', ALL_IN_ONE_ROLES.origin.table, passedValues(ALL_IN_ONE_ROLES.origin, config));
    expect(origin.args.sort()).toEqual(['--log-level=warn', '--purge-edges=http://127.0.0.1:6081', '--purge-queue=10', '--upload-types=image/png', 'origin']);
    expect(origin.secretEnv).toEqual({ UGCFS_PURGE_TOKEN: token });
    const ds = roleCommand('dataserver', ALL_IN_ONE_ROLES.dataserver.table, passedValues(ALL_IN_ONE_ROLES.dataserver, config));
    expect(ds.args.sort()).toEqual(['--log-level=warn', '--read-buffer-pool-bytes=0', 'dataserver']);
    const ns = roleCommand('nameserver', ALL_IN_ONE_ROLES.nameserver.table, passedValues(ALL_IN_ONE_ROLES.nameserver, config));
    expect(ns.args.sort()).toEqual(['--log-level=warn', '--repair-delay-ms=5000', 'nameserver']);
  });
});

describe("ugcfs server with a role's own options", () => {
  let s: AllInOne | undefined;
  let edge: Server | undefined;
  afterAll(async () => {
    await s?.stop();
    edge?.close();
  });

  it('the origin takes --upload-types and --purge-edges with --purge-token, the other roles theirs', async () => {
    // a by-key purge edge that records what it is sent
    const purges: IncomingHttpHeaders[] = [];
    edge = createServer((req, res) => {
      purges.push(req.headers);
      res.writeHead(200, { 'x-edge-purge': 'xkey' }).end();
    });
    await new Promise<void>((r) => edge!.listen(0, '127.0.0.1', r));
    const edgeUrl = `http://127.0.0.1:${(edge.address() as { port: number }).port}`;
    const token = 'purge-token-' + 'y'.repeat(32);
    s = await startAllInOne({
      args: ['--dataservers', '1', '--replicas', '1', '--origin-workers', '1', '--upload-types', 'image/png', '--purge-edges', edgeUrl, '--read-buffer-pool-bytes', '0', '--repair-delay-ms', '45000'],
      env: { UGCFS_PURGE_TOKEN: token },
    });
    const post = (file: string, type: string) =>
      fetch(`${s!.origin}/upload`, { method: 'POST', headers: { 'content-type': type, ...s!.uploadAuth }, body: new Uint8Array(readFileSync(join(CORPUS, 'photos', file))) });
    const jpeg = await post('Aqua.jpg', 'image/jpeg');
    const refused = (await jpeg.json()) as { error: { code: string } };
    expect([jpeg.status, refused.error.code]).toEqual([415, 'UGCFS_ERR_UNSUPPORTED_TYPE']);
    const png = await post('Spring.png', 'image/png');
    expect(png.status).toBe(201);
    const fid = ((await png.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
    // a delete through the origin: the edge is told, with the token from the environment
    expect((await fetch(`${s.origin}/${fid}`, { method: 'DELETE', headers: s.uploadAuth })).status).toBe(204);
    const sent = await waitFor('the purge at the edge', () => purges.find((h) => String(h['xkey-purge'] ?? '').split(' ').includes(fid)));
    expect(sent['x-purge-token']).toBe(token);
    // the name and data servers run with the options of theirs that were given; no secret on a command line
    const listening = s.proc.lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } }).find((l) => l?.name === 'server' && l.msg === 'listening')!;
    const pids = listening.pids as Record<string, number>;
    const cmdline = (role: string) => readFileSync(`/proc/${pids[role]}/cmdline`, 'utf8').split('\0');
    expect(cmdline('dataserver:ds-1')).toContain('--read-buffer-pool-bytes=0');
    expect(cmdline('nameserver')).toContain('--repair-delay-ms=45000');
    expect(cmdline('origin')).toContain('--upload-types=image/png');
    expect(cmdline('origin').join(' ')).not.toContain(token);
  }, 200_000);
});
