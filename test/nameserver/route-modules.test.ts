// The name server's route modules come from one plain list (nameserver/routes.ts): a module
// that throws while registering fails the start, naming the module, and leaves nothing
// running or locked; with the real list every module's routes answer.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import type { RouteModule } from '../../nameserver/context.ts';
import { ROUTE_MODULES } from '../../nameserver/routes.ts';
import { createNameserver } from '../../nameserver/server.ts';
import { loadConfig } from '../../src/base/config.ts';
import { createLogger } from '../../src/base/log.ts';
import { NS_ROUTES } from '../../src/wire/protocol.ts';
import { SECRET_HEADERS, TEST_SECRET, tempDir } from '../helpers/proc.ts';

const tmp = tempDir('ugcfs-route-modules-');
afterAll(() => tmp.cleanup());
const log = createLogger({ name: 'test', level: 'silent' });
const config = (name: string) => loadConfig(NAMESERVER_OPTIONS, { overrides: { data: join(tmp.dir, name), port: 0, clusterSecret: TEST_SECRET } }).config;

describe('name server route modules', () => {
  it('a module that throws at registration fails the start with its name, and the state is released', async () => {
    const broken: RouteModule = {
      name: 'ops-typo',
      register: () => {
        throw new Error('opsSetings is not defined');
      },
    };
    // After the real modules, so what they started (ops timers, the engine) must be stopped again.
    const start = createNameserver(config('broken'), log, { routes: [...ROUTE_MODULES, broken] });
    await expect(start).rejects.toThrow('name server route module ops-typo failed to register: opsSetings is not defined');
    await expect(start).rejects.toMatchObject({ code: 'UGCFS_ERR_INTERNAL' });

    // LevelDB's lock went with the failed start: the same state opens with the real list.
    const ns = await createNameserver(config('broken'), log);
    try {
      // inject() comes from 127.0.0.1: loopback earns nothing, the secret is asked for
      expect((await ns.app.inject({ method: 'GET', url: NS_ROUTES.ops })).statusCode).toBe(401);
      const ops = await ns.app.inject({ method: 'GET', url: NS_ROUTES.ops, headers: SECRET_HEADERS });
      expect(ops.statusCode, ops.body).toBe(200);
      const legacy = await ns.app.inject({ method: 'GET', url: `${NS_ROUTES.legacy}?path=/nope.jpg`, headers: SECRET_HEADERS });
      expect(JSON.parse(legacy.body).error.code).toBe('UGCFS_ERR_LEGACY_NOT_FOUND');
      const page = await ns.app.inject({ method: 'GET', url: NS_ROUTES.page, headers: SECRET_HEADERS });
      expect(page.statusCode).toBe(200);
    } finally {
      await ns.close();
    }
  });

  it('a module that rejects asynchronously fails the start the same way', async () => {
    const broken: RouteModule = { name: 'late', register: async () => Promise.reject(new Error('no sublevel')) };
    await expect(createNameserver(config('async'), log, { routes: [broken] })).rejects.toThrow('name server route module late failed to register: no sublevel');
  });

  it('lists every module in nameserver/ that exports register(app, ctx)', () => {
    const dir = fileURLToPath(new URL('../../nameserver/', import.meta.url));
    const exporting = readdirSync(dir)
      .filter((f) => f.endsWith('.ts') && /^export (async )?function register\(/m.test(readFileSync(join(dir, f), 'utf8')))
      .map((f) => f.replace(/\.ts$/, ''));
    expect(ROUTE_MODULES.map((m) => m.name).sort()).toEqual(exporting.sort());
  });
});
