// The legacy table on real LevelDB, and its admin routes on the real fastify scaffolding.
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyRequest } from 'fastify';
import { Level } from 'level';
import { join } from 'node:path';
import { tempDir } from '../helpers/proc.ts';
import { LegacyTable } from '../../nameserver/legacy-table.ts';
import { register } from '../../nameserver/legacy-routes.ts';
import { createHttpServer } from '../../src/http/http-server.ts';
import { jsonSublevel } from '../../nameserver/state-db.ts';
import { bearer, credentialOf, CredentialRule } from '../../src/base/secret.ts';
import { createLogger } from '../../src/base/log.ts';
import { encodeFid, newCookie } from '../../src/wire/file-id.ts';
import { isUgcfsError } from '../../src/base/errors.ts';

const fid = (key: number) => encodeFid({ block: 1, key: BigInt(key), cookie: newCookie() });
const SHA = 'a'.repeat(64);
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function openDb(dir: string): Promise<Level<string, string>> {
  const db = new Level<string, string>(join(dir, 'ns'));
  await db.open();
  return db;
}

describe('legacy table', () => {
  it('maps, remaps, lists and removes paths, and keeps them across a reopen', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    let db = await openDb(t.dir);
    let table = new LegacyTable(jsonSublevel(db, 'legacy'));
    const a = fid(1);
    const b = fid(2);
    expect((await table.set({ path: '/uploads/2019/a%20b.jpg', fid: a, sha256: SHA, size: 10 })).changed).toBe(true);
    // The same mapping again writes nothing; a new fid replaces it and reports the old one.
    const again = await table.set({ path: '/uploads//2019/a%20b.jpg', fid: a, sha256: SHA });
    expect(again.changed).toBe(false);
    const moved = await table.set({ path: '/uploads/2019/a%20b.jpg', fid: b });
    expect(moved.previous?.fid).toBe(a);
    await table.set({ path: '/uploads/图片/é.jpg'.normalize('NFD'), fid: a });
    await table.set({ path: '/T1FOZHB4ET1RCvBVdK.jpg', fid: a });
    await db.close();

    db = await openDb(t.dir);
    cleanups.push(() => db.close());
    table = new LegacyTable(jsonSublevel(db, 'legacy'));
    expect((await table.get('/uploads/2019/a%20b.jpg'))?.fid).toBe(b);
    expect((await table.get('/uploads/图片/é.jpg'))?.fid).toBe(a);
    const all = await table.list({ limit: 2 });
    expect(all.mappings).toHaveLength(2);
    const rest = await table.list({ after: all.next, limit: 10 });
    expect([...all.mappings, ...rest.mappings].map((m) => m.path)).toEqual(['/T1FOZHB4ET1RCvBVdK.jpg', '/uploads/2019/a%20b.jpg', '/uploads/图片/é.jpg']);
    expect((await table.list({ prefix: '/uploads' })).mappings).toHaveLength(2);
    expect(await table.delete('/T1FOZHB4ET1RCvBVdK.jpg')).toBe(true);
    expect(await table.delete('/T1FOZHB4ET1RCvBVdK.jpg')).toBe(false);
    expect(await table.get('/T1FOZHB4ET1RCvBVdK.jpg')).toBeUndefined();
  });

  it('refuses bad paths, fids and checksums and lets only one ifAbsent create win', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const db = await openDb(t.dir);
    cleanups.push(() => db.close());
    const table = new LegacyTable(jsonSublevel(db, 'legacy'));
    const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e) => (isUgcfsError(e) ? e.code : String(e)));
    expect(await code(table.set({ path: '/../etc/passwd', fid: fid(1) }))).toBe('UGCFS_ERR_BAD_PATH');
    expect(await code(table.set({ path: '/a.jpg', fid: 'not-a-fid' }))).toBe('UGCFS_ERR_BAD_FID');
    expect(await code(table.set({ path: '/a.jpg', fid: fid(1), sha256: 'xyz' }))).toBe('UGCFS_ERR_BAD_REQUEST');
    expect((await table.list()).mappings).toHaveLength(0);
    const results = await Promise.all([1, 2, 3, 4].map((k) => code(table.set({ path: '/race.jpg', fid: fid(k), ifAbsent: true }))));
    expect(results.filter((r) => r === 'ok')).toHaveLength(1);
    expect(results.filter((r) => r === 'UGCFS_ERR_CONFLICT')).toHaveLength(3);
  });
});

describe('legacy routes', () => {
  it('guard every verb with the cluster secret or admin token (reads and adds also the origins\' credential) and speak the error format', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const db = await openDb(t.dir);
    // The name server's own guards are exercised end to end in the process tests; these
    // mirror them (nameserver/server.ts), so what is checked here is what each verb asks for.
    const [ADMIN, SECRET, ORIGIN] = ['adm1n', 's3cret', '0rigin'].map((p) => `${p}-${'x'.repeat(32)}`) as [string, string, string];
    const either = (rule: CredentialRule) => (req: FastifyRequest) => {
      if (!rule.accepts(bearer(req.headers.authorization))) rule.check(credentialOf(req.headers));
    };
    const requireAdmin = either(new CredentialRule([ADMIN, SECRET], [ORIGIN]));
    const lookup = either(new CredentialRule([ADMIN, SECRET, ORIGIN]));
    const { app } = createHttpServer({ role: 'nameserver', log: createLogger({ name: 'test', level: 'silent' }), clusterSecret: SECRET, originSecret: ORIGIN, auth: { admin: requireAdmin, lookup } });
    register(app, { namespace: <V>(name: string) => jsonSublevel<V>(db, name), requireAdmin });
    await app.ready();
    cleanups.push(async () => { await app.close(); await db.close(); });
    const f = fid(7);
    const put = (headers: Record<string, string>, payload: unknown) => app.inject({ method: 'PUT', url: '/legacy', headers, payload: payload as object });

    const anon = await put({}, { path: '/a.jpg', fid: f });
    expect(anon.statusCode).toBe(401);
    expect(anon.json().error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
    expect((await put({ authorization: 'Bearer wrong' }, { path: '/a.jpg', fid: f })).statusCode).toBe(401);
    expect((await put({ authorization: `Bearer ${ADMIN}` }, { path: '/a b.jpg', fid: f })).statusCode).toBe(200);
    const bad = await put({ 'x-ugcfs-secret': SECRET }, { path: '/x/../../y.jpg', fid: f });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe('UGCFS_ERR_BAD_PATH');

    const got = await app.inject({ url: '/legacy?path=%2Fa%20b.jpg', headers: { 'x-ugcfs-secret': SECRET } });
    expect(got.json()).toMatchObject({ path: '/a b.jpg', fid: f });
    expect((await app.inject({ url: '/legacy?path=%2Fa%20b.jpg' })).statusCode).toBe(401);
    const missing = await app.inject({ url: '/legacy?path=/nope.jpg', headers: { authorization: `Bearer ${ADMIN}` } });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('UGCFS_ERR_LEGACY_NOT_FOUND');
    // The origins' credential: what a read-through and an import do (read, add), never removing.
    const byOrigin = { 'x-ugcfs-secret': ORIGIN };
    expect((await put(byOrigin, { path: '/o.jpg', fid: f })).statusCode).toBe(200);
    expect((await app.inject({ url: '/legacy?path=%2Fo.jpg', headers: byOrigin })).json()).toMatchObject({ path: '/o.jpg', fid: f });
    const originDelete = await app.inject({ method: 'DELETE', url: '/legacy?path=/o.jpg', headers: byOrigin });
    expect(originDelete.statusCode).toBe(403);
    expect(originDelete.json().error.code).toBe('UGCFS_ERR_FORBIDDEN');
    expect((await app.inject({ url: '/legacy?path=%2Fo.jpg', headers: byOrigin })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url: '/legacy?path=/a%20b.jpg', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode).toBe(204);
    expect((await app.inject({ method: 'DELETE', url: '/legacy?path=/a%20b.jpg', headers: { authorization: `Bearer ${ADMIN}` } })).statusCode).toBe(404);
  });
});
