// `ugcfs migrate DIR --prefix` against a real cluster, and the migrated old URLs served by a
// real `ugcfs origin`: nested folders, spaces, unicode (both normal forms), TFS-style names,
// and symlinks (one inside, two leading out of the tree).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import sharp from 'sharp';
import { CORPUS, start, tempDir, type Proc } from '../helpers/proc.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { checkUpload } from '../../origin/image-pipeline.ts';
import type { LegacyList } from '../../src/wire/protocol.ts';

const ADMIN = `migration-admin-token-${randomBytes(16).toString('hex')}`;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const LIMITS = { maxPixels: 100_000_000, timeoutMs: 15_000 };
/** What an upload of these bytes stores: migration must store exactly that. */
const asStored = async (b: Buffer) => (await checkUpload(b, LIMITS, (j) => j())).data;

let cluster: Cluster;
let origin: Proc;
let work: { dir: string; cleanup: () => void };
let tree: string;
let outside: string;
let clean: Buffer;

async function get(path: string): Promise<{ status: number; type: string | null; body: Buffer }> {
  const res = await fetch(origin.url + path);
  return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()) };
}

async function mappings(prefix: string): Promise<LegacyList['mappings']> {
  const res = await fetch(`${cluster.nameserver.url}/legacy?prefix=${encodeURIComponent(prefix)}&limit=1000`, { headers: { 'x-ugcfs-secret': cluster.secret } });
  return ((await res.json()) as LegacyList).mappings;
}

beforeAll(async () => {
  work = tempDir('ugcfs-migrate-tree-');
  tree = join(work.dir, 'old-uploads');
  outside = join(work.dir, 'private');
  mkdirSync(join(tree, '2019', '05'), { recursive: true });
  mkdirSync(join(tree, 'new folder', 'deep er'), { recursive: true });
  mkdirSync(join(tree, '商品图片'), { recursive: true });
  mkdirSync(outside, { recursive: true });
  // A JPEG with nothing to strip, so "byte-exact" can be checked against the file itself.
  clean = await sharp({ create: { width: 320, height: 240, channels: 3, background: { r: 200, g: 40, b: 90 } } }).jpeg({ quality: 85 }).toBuffer();
  writeFileSync(join(tree, '2019', '05', 'a.jpg'), clean);
  copyFileSync(join(CORPUS, 'photos', 'Spring.png'), join(tree, 'new folder', 'deep er', 'spring 1.png'));
  copyFileSync(join(CORPUS, 'exif', 'geodegrees_as_string.jpg'), join(tree, '商品图片', '照片 GPS.jpg'));
  copyFileSync(join(CORPUS, 'photos', 'wood-d.webp'), join(tree, 'T1FOZHB4ET1RCvBVdK.webp'));
  copyFileSync(join(CORPUS, 'photos', 'FreshFlower.jpg'), join(tree, 'e\u0301te\u0301.jpg')); // NFD name
  copyFileSync(join(CORPUS, 'photos', 'FreshFlower.jpg'), join(tree, 'T1aBcDeFgHiJkLmNoP_!!0-item_pic.jpg'));
  writeFileSync(join(tree, 'notes.txt'), 'not an image\n');
  // Outside the tree: must never be copied or served.
  copyFileSync(join(CORPUS, 'photos', 'LadyBird.jpg'), join(outside, 'secret.jpg'));
  symlinkSync(join(outside, 'secret.jpg'), join(tree, 'escape.jpg'));
  symlinkSync(outside, join(tree, 'escape-dir'));
  symlinkSync('../2019/05/a.jpg', join(tree, '商品图片', 'alias.jpg'));

  cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [], blockSize: 8 * 1024 * 1024, adminToken: ADMIN });
  origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: cluster.secret } });
});

afterAll(async () => {
  await origin?.kill();
  await cluster?.stop();
  work?.cleanup();
});

describe('ugcfs migrate DIR', () => {
  it('migrates the tree, serves every old URL byte-exact with variants, and never the symlink targets', async () => {
    const r = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', join(work.dir, 'state'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ total: 10, copied: 8, failed: 0 });
    // Every regular file is copied, images or not; only the links leading out are skipped.
    expect(report.skips.map((s: { path: string }) => s.path).sort()).toEqual(['escape-dir', 'escape.jpg']);
    expect(report.skips.find((s: { path: string }) => s.path === 'escape.jpg').reason).toMatch(/outside the tree/);

    // Byte-exact: the clean file as it is on disk; the others exactly as an upload stores them.
    const a = await get('/uploads/2019/05/a.jpg');
    expect(a.status).toBe(200);
    expect(a.type).toBe('image/jpeg');
    expect(a.body.equals(clean)).toBe(true);
    const notes = await get('/uploads/notes.txt');
    expect(notes.status).toBe(200);
    expect(notes.type).toBe('text/plain; charset=utf-8');
    expect(notes.body.toString()).toBe('not an image\n');
    // Served exactly like its fid: same validator, so CDNs and browsers treat them alike.
    const aFid = (await mappings('/uploads/2019')).find((m) => m.path === '/uploads/2019/05/a.jpg')!.fid;
    const byLegacy = await fetch(origin.url + '/uploads/2019/05/a.jpg');
    const byFid = await fetch(`${origin.url}/${aFid}`);
    expect(byLegacy.headers.get('etag')).toBeTruthy();
    expect(byLegacy.headers.get('etag')).toBe(byFid.headers.get('etag'));
    expect(byLegacy.headers.get('cache-control')).toBe(byFid.headers.get('cache-control'));
    const cases: Array<[string, string]> = [
      ['/uploads/new%20folder/deep%20er/spring%201.png', join(tree, 'new folder', 'deep er', 'spring 1.png')],
      ['/uploads/new folder/deep er/spring 1.png'.replaceAll(' ', '%20').replace('/uploads/', '/uploads//'), join(tree, 'new folder', 'deep er', 'spring 1.png')],
      [`/uploads/${encodeURIComponent('商品图片')}/${encodeURIComponent('照片 GPS.jpg')}`, join(tree, '商品图片', '照片 GPS.jpg')],
      ['/uploads/T1FOZHB4ET1RCvBVdK.webp', join(tree, 'T1FOZHB4ET1RCvBVdK.webp')],
      [`/uploads/${encodeURIComponent('été.jpg'.normalize('NFC'))}`, join(tree, 'e\u0301te\u0301.jpg')],
      [`/uploads/${encodeURIComponent('T1aBcDeFgHiJkLmNoP_!!0-item_pic.jpg')}`, join(tree, 'T1aBcDeFgHiJkLmNoP_!!0-item_pic.jpg')],
      [`/uploads/${encodeURIComponent('商品图片')}/alias.jpg`, join(tree, '2019', '05', 'a.jpg')],
    ];
    for (const [url, file] of cases) {
      const got = await get(url);
      expect(got.status, url).toBe(200);
      expect(sha(got.body), url).toBe(sha(await asStored(readFileSync(file))));
    }
    // The GPS-tagged photo left its EXIF behind.
    const gps = await get(cases[2]![0]);
    expect((await sharp(gps.body).metadata()).exif?.length ?? 0).toBeLessThan(64);

    // Variants by query and by Taobao suffix work on migrated paths.
    const q = await get('/uploads/2019/05/a.jpg?w=100');
    expect(q.status).toBe(200);
    expect((await sharp(q.body).metadata()).width).toBe(100);
    const suffix = await get('/uploads/2019/05/a.jpg_200x200.jpg');
    expect(suffix.status).toBe(200);
    const sm = await sharp(suffix.body).metadata();
    expect(Math.max(sm.width, sm.height)).toBeLessThanOrEqual(200);
    const webp = await get('/uploads/T1FOZHB4ET1RCvBVdK.webp_120x120q90.jpg_.webp');
    expect(webp.status).toBe(200);
    expect(webp.type).toBe('image/webp');

    // The symlink targets outside the tree: no mapping, no bytes, under any spelling.
    for (const url of ['/uploads/escape.jpg', '/uploads/escape-dir/secret.jpg', '/uploads/2019/../escape.jpg', '/uploads/%2e%2e/private/secret.jpg']) {
      const got = await get(url);
      expect(got.status, url).toBeGreaterThanOrEqual(400);
      expect(got.status, url).toBeLessThan(500);
    }
    const secretSha = sha(await asStored(readFileSync(join(outside, 'secret.jpg'))));
    const all = await mappings('/');
    expect(all).toHaveLength(8);
    expect(all.some((m) => m.sha256 === secretSha || m.path.includes('escape'))).toBe(false);
  });

  it('is idempotent, and remaps a path whose bytes changed', async () => {
    const state = join(work.dir, 'state');
    const before = await mappings('/uploads');
    const again = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', state, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, unchanged: 8, failed: 0 });
    expect(await mappings('/uploads')).toEqual(before);

    // A different state dir forgets nothing that matters: the table's checksums decide.
    const fresh = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', join(work.dir, 'other-state'), '--json']);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ copied: 0, unchanged: 8 });
    expect(await mappings('/uploads')).toEqual(before);

    const changed = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#0a0' } }).jpeg().toBuffer();
    writeFileSync(join(tree, '2019', '05', 'a.jpg'), changed);
    const dry = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', state, '--json', '--dry-run']);
    expect(JSON.parse(dry.stdout)).toMatchObject({ dryRun: true, copied: 2, updated: 2 });
    expect(await mappings('/uploads')).toEqual(before);

    const third = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', state, '--json']);
    expect(third.code, third.stderr).toBe(0);
    // The file and the in-tree symlink to it both changed.
    expect(JSON.parse(third.stdout)).toMatchObject({ copied: 2, updated: 2, unchanged: 6 });
    const after = await mappings('/uploads');
    const moved = after.filter((m) => before.find((b) => b.path === m.path)!.fid !== m.fid).map((m) => m.path).sort();
    expect(moved).toEqual(['/uploads/2019/05/a.jpg', '/uploads/商品图片/alias.jpg']);
    // Origins remember a mapping for a short while (docs/MIGRATION.md); the new fid serves the new bytes at once.
    const remapped = after.find((m) => m.path === '/uploads/2019/05/a.jpg')!;
    expect(sha((await get('/' + remapped.fid)).body)).toBe(sha(changed));
  });

  it('keeps its state file out of the tree it migrates, and needs the cluster secret', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', tree, '--json']);
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ total: 10, copied: 0, unchanged: 8 });
    }
    const anon = await fetch(`${cluster.nameserver.url}/legacy?path=/uploads/2019/05/a.jpg`);
    expect(anon.status).toBe(401);
    const wrongToken = await fetch(`${cluster.nameserver.url}/legacy?path=/uploads/2019/05/a.jpg`, { headers: { authorization: 'Bearer nope' } });
    expect(wrongToken.status).toBe(401);
    const admin = await fetch(`${cluster.nameserver.url}/legacy?path=/uploads/2019/05/a.jpg`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(admin.status).toBe(200);
    const wrong = await cluster.cli(['migrate', tree, '--prefix', '/uploads'], { env: { UGCFS_CLUSTER_SECRET: randomBytes(24).toString('hex') } });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim().split('\n')).toHaveLength(1);
    expect(wrong.stderr).toMatch(/UGCFS_ERR_UNAUTHORIZED/);
  });

  it('reports files it cannot migrate, with reasons, and copies the rest (exit 1)', async () => {
    const odd = join(work.dir, 'odd');
    mkdirSync(odd);
    copyFileSync(join(CORPUS, 'exif', 'f1-exif.jpg'), join(odd, 'ok.jpg'));
    // A Latin-1 name (no URL anyone used can be derived from it) and NFC/NFD twins (one key).
    writeFileSync(Buffer.concat([Buffer.from(odd + '/caf'), Buffer.from([0xe9]), Buffer.from('.jpg')]), clean);
    writeFileSync(join(odd, 'tw\u00ecn.jpg'), clean);
    writeFileSync(join(odd, 'twi\u0300n.jpg'), clean);
    writeFileSync(join(odd, 'broken.jpg'), clean.subarray(0, 200));
    const r = await cluster.cli(['migrate', odd, '--prefix', '/odd', '--state', join(work.dir, 'state'), '--json']);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ total: 5, copied: 2, failed: 3 });
    const reasons = report.failures.map((f: { reason: string }) => f.reason).join('\n');
    expect(reasons).toMatch(/not valid UTF-8/);
    expect(reasons).toMatch(/same legacy path/);
    expect(reasons).toMatch(/UGCFS_ERR_BAD_IMAGE/);
    expect((await mappings('/odd')).map((m) => m.path).sort()).toEqual(['/odd/ok.jpg', '/odd/twìn.jpg']);
  });

  it('answers bad usage with exit code 2 and one line', async () => {
    for (const args of [['migrate'], ['migrate', tree, '--prefix', '/../x'], ['migrate', tree, '--concurrency', '0'], ['migrate', '--from-url', 'http://127.0.0.1:1']]) {
      const r = await cluster.cli(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const gone = await cluster.cli(['migrate', join(work.dir, 'no-such-dir'), '--prefix', '/uploads']);
    expect(gone.code).toBe(2);
  });
  it('removes the scratch dirs a SIGKILLed run left in the temp dir, never a live run\'s', async () => {
    // TMPDIR of its own, so what the run leaves and removes can be seen.
    const tmp = join(work.dir, 'tmp');
    mkdirSync(tmp);
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // exited and reaped: not running
    const orphans = [`ugcfs-migrate-seen-${dead}-aaaaaa`, `ugcfs-migrate-report-${dead}-bbbbbb`];
    const live = `ugcfs-migrate-report-${process.pid}-cccccc`;
    for (const d of [...orphans, live, 'unrelated-dir']) mkdirSync(join(tmp, d));
    writeFileSync(join(tmp, orphans[1]!, 'list.jsonl'), '{"path":"x","reason":"y"}\n');
    const r = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', join(work.dir, 'state'), '--json', '--dry-run'], { env: { TMPDIR: tmp } });
    expect(r.code, r.stderr).toBe(0);
    // The tree holds links leading out, which are skipped: the run made its own report list, and removed it.
    expect(JSON.parse(r.stdout).skipped).toBeGreaterThan(0);
    // (the TypeScript loader keeps its own cache there too)
    const left = readdirSync(tmp);
    expect(left.filter((n) => n.startsWith('ugcfs-migrate-'))).toEqual([live]);
    expect(left).toContain('unrelated-dir');
  });
});
