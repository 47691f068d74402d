// An old HTTP origin (nginx from Debian) in front of the migration: `ugcfs migrate
// --from-url BASE --list FILE` copying TFS-era names, and origin read-through with lazy
// import, which must keep serving once the old origin is gone and the origin restarted.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { CORPUS, start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { checkUpload } from '../../origin/image-pipeline.ts';
import type { LegacyMapping } from '../../src/wire/protocol.ts';
import { NGINX_MISSING, startOldOrigin, type OldOrigin } from './old-origin.ts';
import { LegacyImporter } from '../../origin/legacy-import.ts';
import { createLogger } from '../../src/base/log.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const asStored = async (b: Buffer) => (await checkUpload(b, { maxPixels: 100_000_000, timeoutMs: 15_000 }, (j) => j())).data;

let cluster: Cluster;
let old: OldOrigin;
let work: { dir: string; cleanup: () => void };
let www: string;
let origin: Proc | undefined;

async function mapping(path: string): Promise<LegacyMapping | undefined> {
  const res = await fetch(`${cluster.nameserver.url}/legacy?path=${encodeURIComponent(path)}`, { headers: { 'x-ugcfs-secret': cluster.secret } });
  return res.status === 200 ? ((await res.json()) as LegacyMapping) : undefined;
}

async function get(path: string): Promise<{ status: number; body: Buffer; code?: string }> {
  const res = await fetch(origin!.url + path);
  const body = Buffer.from(await res.arrayBuffer());
  const code = res.headers.get('content-type')?.includes('json') ? (JSON.parse(body.toString()) as { error?: { code?: string } }).error?.code : undefined;
  return { status: res.status, body, ...(code ? { code } : {}) };
}

function startOrigin(): Promise<Proc> {
  return start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--legacy-origin', old.url, '--legacy-import'], {
    env: { UGCFS_CLUSTER_SECRET: cluster.secret },
  });
}

/** `ugcfs origin` passes origin/legacy-read-through.ts's resolver to startOrigin (it logs this line). */
const readThroughWired = (p: Proc) => p.lines.some((l) => l.includes('legacy read-through enabled'));

describe.skipIf(NGINX_MISSING !== '')(`old origin (nginx)${NGINX_MISSING ? ': ' + NGINX_MISSING : ''}`, () => {
  beforeAll(async () => {
    work = tempDir('ugcfs-legacy-origin-');
    www = join(work.dir, 'www');
    mkdirSync(join(www, 'old', 'sub dir'), { recursive: true });
    mkdirSync(join(www, 'rt'), { recursive: true });
    copyFileSync(join(CORPUS, 'photos', 'Aqua.jpg'), join(www, 'T1FOZHB4ET1RCvBVdK.jpg'));
    copyFileSync(join(CORPUS, 'photos', 'FreshFlower.jpg'), join(www, 'old', 'flower.jpg'));
    copyFileSync(join(CORPUS, 'photos', 'Spring.png'), join(www, 'old', 'sub dir', 'spring 图.png'));
    copyFileSync(join(CORPUS, 'exif', 'geodegrees_as_string.jpg'), join(www, 'rt', 'gps.jpg'));
    copyFileSync(join(CORPUS, 'photos', 'GreenMeadow.jpg'), join(www, 'rt', 'never-fetched.jpg'));
    old = await startOldOrigin(www, join(work.dir, 'nginx'));
    cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [], blockSize: 8 * 1024 * 1024 });
  });

  afterAll(async () => {
    await origin?.kill();
    await old?.stop();
    await cluster?.stop();
    work?.cleanup();
  });

  it('migrates a list of old URLs, reports what the old origin lacks, and re-copies only what changed', async () => {
    const list = join(work.dir, 'list.txt');
    writeFileSync(
      list,
      ['# TFS-era names and old upload paths', '/T1FOZHB4ET1RCvBVdK.jpg', '/old/sub%20dir/spring%20%E5%9B%BE.png', `${old.url}/old/flower.jpg?v=3`, '/T1FOZHB4ET1RCvBVdK.jpg', '', '/old/missing.jpg'].join('\n'),
    );
    const args = ['migrate', '--from-url', old.url, '--list', list, '--state', join(work.dir, 'state'), '--json'];
    const first = await cluster.cli(args);
    expect(first.code, first.stderr).toBe(1);
    const r1 = JSON.parse(first.stdout);
    expect(r1).toMatchObject({ total: 4, copied: 3, failed: 1 });
    expect(r1.failures[0]).toMatchObject({ path: '/old/missing.jpg' });
    expect(r1.failures[0].reason).toMatch(/404/);

    for (const [path, file] of [
      ['/T1FOZHB4ET1RCvBVdK.jpg', join(www, 'T1FOZHB4ET1RCvBVdK.jpg')],
      ['/old/sub dir/spring 图.png', join(www, 'old', 'sub dir', 'spring 图.png')],
      ['/old/flower.jpg', join(www, 'old', 'flower.jpg')],
    ] as const) {
      const m = await mapping(path);
      expect(m, path).toBeDefined();
      expect(sha((await cluster.client.read(m!.fid)).data), path).toBe(sha(await asStored(readFileSync(file))));
    }
    expect(await mapping('/old/missing.jpg')).toBeUndefined();

    const again = await cluster.cli(args);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, unchanged: 3, failed: 1 });

    const before = await mapping('/old/flower.jpg');
    copyFileSync(join(CORPUS, 'photos', 'Garden.jpg'), join(www, 'old', 'flower.jpg'));
    const changed = await cluster.cli(args);
    expect(JSON.parse(changed.stdout)).toMatchObject({ copied: 1, updated: 1, unchanged: 2 });
    const after = await mapping('/old/flower.jpg');
    expect(after!.fid).not.toBe(before!.fid);
    expect(after!.sha256).toBe(sha(await asStored(readFileSync(join(CORPUS, 'photos', 'Garden.jpg')))));
  });

  it('imports each path once, drops what overflows its queue, and yields to a mapping made first', async () => {
    const img = await asStored(readFileSync(join(CORPUS, 'exif', 'f3-exif.jpg')));
    const importer = new LegacyImporter({ store: cluster.client, log: createLogger({ name: 'test', level: 'silent' }), maxQueue: 1, concurrency: 1 });
    expect(importer.enqueue('/lazy/a.jpg', img, 'image/jpeg')).toBe(true);
    expect(importer.enqueue('/lazy/a.jpg', img, 'image/jpeg')).toBe(false);
    expect(importer.enqueue('/lazy/b.jpg', img, 'image/jpeg')).toBe(true);
    expect(importer.enqueue('/lazy/c.jpg', img, 'image/jpeg')).toBe(false);
    expect(importer.stats.dropped).toBe(1);
    await importer.idle();
    expect(importer.stats).toMatchObject({ imported: 2, failed: 0 });
    expect(importer.enqueue('/lazy/a.jpg', img, 'image/jpeg')).toBe(false);
    const a = await mapping('/lazy/a.jpg');
    expect(sha((await cluster.client.read(a!.fid)).data)).toBe(sha(img));

    // Someone (another origin, a migrate run) mapped it first: theirs stands, our copy goes.
    const theirs = await cluster.client.write(img, { mime: 'image/jpeg' });
    await cluster.client.legacySet('/lazy/raced.jpg', theirs.fid);
    const racer = new LegacyImporter({
      // Its lookup misses, as when the other writer maps the path just after it looked.
      store: {
        write: cluster.client.write.bind(cluster.client),
        read: cluster.client.read.bind(cluster.client),
        delete: cluster.client.delete.bind(cluster.client),
        legacySet: cluster.client.legacySet.bind(cluster.client),
        legacyLookup: async () => undefined,
      },
      log: createLogger({ name: 'test', level: 'silent' }),
    });
    racer.enqueue('/lazy/raced.jpg', img, 'image/jpeg');
    await racer.idle();
    expect(racer.stats.imported).toBe(0);
    expect((await mapping('/lazy/raced.jpg'))!.fid).toBe(theirs.fid);
    await importer.close();
    await racer.close();
  });

  it('reads unmigrated files through, imports them lazily, and keeps serving them after the old origin is gone', async (ctx) => {
    origin = await startOrigin();
    if (!readThroughWired(origin)) ctx.skip('ugcfs origin does not pass legacyResolverFor (origin/legacy-read-through.ts) to startOrigin yet');

    const gpsStored = await asStored(readFileSync(join(www, 'rt', 'gps.jpg')));
    const first = await get('/rt/gps.jpg');
    expect(first.status).toBe(200);
    expect(sha(first.body)).toBe(sha(gpsStored));
    expect((await get('/rt/gps.jpg_100x100.jpg')).status).toBe(200);
    // The old origin's 404 stays a 404.
    const missing = await get('/rt/nope.jpg');
    expect(missing.status).toBe(404);
    expect(missing.code).toBe('UGCFS_ERR_LEGACY_NOT_FOUND');

    const imported = await waitFor('the lazy import to map /rt/gps.jpg', () => mapping('/rt/gps.jpg'));
    expect(imported.sha256).toBe(sha(gpsStored));
    // Served again and again, it is imported once.
    await get('/rt/gps.jpg');
    expect((await mapping('/rt/gps.jpg'))!.fid).toBe(imported.fid);

    await old.stop();
    await origin.kill();
    origin = await startOrigin();
    const later = await get('/rt/gps.jpg');
    expect(later.status).toBe(200);
    expect(sha(later.body)).toBe(sha(gpsStored));
    expect((await get('/rt/gps.jpg?w=50')).status).toBe(200);
    // Never fetched before the old origin went away: a gateway error, not a false 404.
    expect((await get('/rt/never-fetched.jpg')).status).toBe(502);
  });
});
