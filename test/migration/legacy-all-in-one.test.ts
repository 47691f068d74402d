// The all-in-one `ugcfs server` takes the origin's legacy options as `ugcfs origin` does:
// with --legacy-origin an unmapped legacy path is read through from the old origin (nginx)
// and, with --legacy-import, mapped in the background.
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkUpload } from '../../origin/image-pipeline.ts';
import type { LegacyMapping } from '../../src/wire/protocol.ts';
import { startAllInOne, type AllInOne } from '../deploy/all-in-one.ts';
import { CORPUS, run, tempDir, waitFor } from '../helpers/proc.ts';
import { NGINX_MISSING, startOldOrigin, type OldOrigin } from './old-origin.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const asStored = async (b: Buffer) => (await checkUpload(b, { maxPixels: 100_000_000, timeoutMs: 15_000 }, (j) => j())).data;

describe('ugcfs server --legacy-import without --legacy-origin', () => {
  it('is bad usage, before anything starts', async () => {
    const r = await run(['server', '--legacy-import', '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0', '--data', '/nonexistent/never-made']);
    // Node's own warning lines (fastify deprecation notices) are not ours to print.
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l));
    expect(lines).toEqual(['ugcfs server: --legacy-import imports what --legacy-origin reads through; give --legacy-origin URL too']);
    expect(r.code).toBe(2);
  });
});

describe.skipIf(NGINX_MISSING !== '')(`ugcfs server --legacy-origin (nginx)${NGINX_MISSING ? ': ' + NGINX_MISSING : ''}`, () => {
  let work: { dir: string; cleanup: () => void };
  let www: string;
  let old: OldOrigin;
  let aio: AllInOne;

  beforeAll(async () => {
    work = tempDir('ugcfs-legacy-aio-');
    www = join(work.dir, 'www');
    mkdirSync(join(www, 'shop', 'item 7'), { recursive: true });
    copyFileSync(join(CORPUS, 'photos', 'FreshFlower.jpg'), join(www, 'shop', 'item 7', 'main.jpg'));
    old = await startOldOrigin(www, join(work.dir, 'nginx'));
    aio = await startAllInOne({ args: ['--legacy-origin', old.url, '--legacy-import'], dir: join(work.dir, 'aio') });
  });

  afterAll(async () => {
    await aio?.stop();
    await old?.stop();
    work?.cleanup();
  });

  const mapping = async (path: string): Promise<LegacyMapping | undefined> => {
    const res = await fetch(`${aio.nameserver}/legacy?path=${encodeURIComponent(path)}`, { headers: aio.secretHeaders });
    return res.status === 200 ? ((await res.json()) as LegacyMapping) : undefined;
  };

  it('serves an unmapped legacy path through the old origin, and imports it', async () => {
    const path = '/shop/item 7/main.jpg';
    expect(await mapping(path)).toBeUndefined();
    // The table answers the cluster's credentials only, loopback included.
    expect((await fetch(`${aio.nameserver}/legacy?path=${encodeURIComponent(path)}`)).status).toBe(401);
    const stored = await asStored(readFileSync(join(www, 'shop', 'item 7', 'main.jpg')));

    const res = await fetch(`${aio.origin}/shop/item%207/main.jpg`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/jpeg');
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(stored));
    expect((await fetch(`${aio.origin}/shop/item%207/main.jpg_100x100.jpg`)).status).toBe(200);

    // The old origin's 404 stays a 404.
    const missing = await fetch(`${aio.origin}/shop/none.jpg`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('UGCFS_ERR_LEGACY_NOT_FOUND');

    const imported = await waitFor('the lazy import to map the path', () => mapping(path));
    expect(imported.sha256).toBe(sha(stored));
  });
});
