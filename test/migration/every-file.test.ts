// Every old URL keeps resolving, not only images': `ugcfs migrate` (a tree and a URL list)
// and read-through with lazy import copy PDFs, binary files, HTML, SVG and text besides
// images, and a real origin serves each back by its old path, byte-exact, with its type
// from the bytes or name, `nosniff`, a sandbox CSP, and markup and unknown types as
// attachments. Variants of them are a clear 415.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import sharp from 'sharp';
import { CORPUS, start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Small generated files, one of each kind an old upload tree holds besides images. */
function files(): Record<string, Buffer> {
  return {
    // A PDF carrying metadata of its own (an Info dictionary): it must come back untouched.
    'manual.pdf': Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n3 0 obj << /Author (Jane Seller) /Producer (old-cms) >> endobj\ntrailer << /Root 1 0 R /Info 3 0 R >>\n%%EOF\n'),
    // No magic number, no text: an unknown type.
    'firmware.bin': Buffer.concat([Buffer.from([0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x07]), randomBytes(3000)]),
    'page.html': Buffer.from('<!DOCTYPE html>\n<html><body><script>document.title = document.cookie</script></body></html>\n'),
    'logo.svg': Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script><rect width="10" height="10"/></svg>\n'),
    'readme.txt': Buffer.from('Größentabelle — size chart\n38 40 42\n'),
  };
}

/** What each kind must be served as: type, and whether it is an attachment. */
const EXPECTED: Record<string, { type: string; attachment: boolean }> = {
  'manual.pdf': { type: 'application/pdf', attachment: false },
  'firmware.bin': { type: 'application/octet-stream', attachment: true },
  'page.html': { type: 'text/html', attachment: true },
  'logo.svg': { type: 'image/svg+xml', attachment: true },
  'readme.txt': { type: 'text/plain; charset=utf-8', attachment: false },
};

let cluster: Cluster;
let origin: Proc;
let work: { dir: string; cleanup: () => void };
let tree: string;
let oldOrigin: Server | undefined;
let oldUrl: string;
const oldFiles = new Map<string, Buffer>();
const extra: Proc[] = [];

interface Got {
  status: number;
  headers: Headers;
  body: Buffer;
}

async function get(base: string, path: string, headers: Record<string, string> = {}): Promise<Got> {
  const res = await fetch(base + path, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Byte-exact, with the right type and the headers every non-image answer carries. */
function expectServed(got: Got, name: string, bytes: Buffer, where: string): void {
  const want = EXPECTED[name]!;
  expect(got.status, where).toBe(200);
  expect(sha(got.body), where).toBe(sha(bytes));
  expect(got.headers.get('content-type'), where).toBe(want.type);
  expect(got.headers.get('x-content-type-options'), where).toBe('nosniff');
  expect(got.headers.get('content-security-policy'), where).toMatch(/(^|;\s*)sandbox(;|$)/);
  expect(got.headers.get('content-disposition'), where).toBe(want.attachment ? 'attachment' : null);
}

beforeAll(async () => {
  work = tempDir('ugcfs-every-file-');
  tree = join(work.dir, 'old-site');
  mkdirSync(join(tree, 'docs', '2019'), { recursive: true });
  mkdirSync(join(tree, 'img'), { recursive: true });
  for (const [name, bytes] of Object.entries(files())) writeFileSync(join(tree, 'docs', '2019', name), bytes);
  copyFileSync(join(CORPUS, 'photos', 'Spring.png'), join(tree, 'img', 'spring.png'));
  writeFileSync(join(tree, 'img', 'clean.jpg'), await sharp({ create: { width: 64, height: 48, channels: 3, background: '#c03' } }).jpeg().toBuffer());

  // The old origin for URL lists and read-through: a plain static server on loopback.
  for (const [name, bytes] of Object.entries(files())) oldFiles.set(`/files/${name}`, bytes);
  oldFiles.set('/files/photo.jpg', readFileSync(join(CORPUS, 'photos', 'Aqua.jpg')));
  oldOrigin = createServer((req, res) => {
    const body = oldFiles.get(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
    // The old server's own Content-Type is what it always said: never trusted.
    if (body) res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
    else res.writeHead(404).end('not here');
  });
  await new Promise<void>((r) => oldOrigin!.listen(0, '127.0.0.1', () => r()));
  const addr = oldOrigin.address();
  oldUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;

  cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [], blockSize: 8 * 1024 * 1024 });
  origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: cluster.secret } });
});

afterAll(async () => {
  for (const p of extra) await p.kill();
  await origin?.kill();
  await cluster?.stop();
  oldOrigin?.closeAllConnections();
  await new Promise((r) => (oldOrigin ? oldOrigin.close(r) : r(undefined)));
  work?.cleanup();
});

describe('every file, images or not', () => {
  it('migrates a tree with PDFs, binaries, HTML, SVG and text, and serves every old URL byte-exact', async () => {
    const r = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', join(work.dir, 'state'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ total: 7, copied: 7, skipped: 0, failed: 0 });

    for (const [name, bytes] of Object.entries(files())) {
      const path = `/uploads/docs/2019/${name}`;
      expectServed(await get(origin.url, path), name, readFileSync(join(tree, 'docs', '2019', name)), path);
      expect(bytes.length).toBeGreaterThan(0);
    }
    // The PDF's own metadata is untouched (nothing is stripped from files that are not images).
    expect((await get(origin.url, '/uploads/docs/2019/manual.pdf')).body.toString('latin1')).toContain('/Author (Jane Seller)');
    // Images keep their behaviour: inline, their own type, variants.
    const png = await get(origin.url, '/uploads/img/spring.png');
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(png.headers.get('content-disposition')).toBeNull();
    expect((await get(origin.url, '/uploads/img/clean.jpg?w=32')).status).toBe(200);

    // Ranges work on any file (PDF viewers and video players ask for them).
    const range = await get(origin.url, '/uploads/docs/2019/manual.pdf', { range: 'bytes=0-7' });
    expect(range.status).toBe(206);
    expect(range.body.toString('latin1')).toBe('%PDF-1.4');

    // Variants of a file that is not an image: a clear 415 with a stable code, by query and by suffix.
    for (const path of ['/uploads/docs/2019/manual.pdf?w=100', '/uploads/docs/2019/manual.pdf_100x100.jpg', '/uploads/docs/2019/logo.svg?w=10&fmt=png']) {
      const v = await get(origin.url, path);
      expect(v.status, path).toBe(415);
      expect(JSON.parse(v.body.toString()).error.code, path).toBe('UGCFS_ERR_UNSUPPORTED_TYPE');
    }

    // A rerun stores nothing: every file is unchanged, non-images included.
    const again = await cluster.cli(['migrate', tree, '--prefix', '/uploads', '--state', join(work.dir, 'state'), '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ copied: 0, unchanged: 7, failed: 0 });
  });

  it('copies non-images from a list of old URLs too', async () => {
    const list = join(work.dir, 'list.txt');
    writeFileSync(list, ['/files/manual.pdf', `${oldUrl}/files/firmware.bin`, '/files/page.html', '/files/missing.pdf', ''].join('\n'));
    const r = await cluster.cli(['migrate', '--from-url', oldUrl, '--list', list, '--prefix', '/old', '--state', join(work.dir, 'state'), '--json', '--retries', '0']);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ total: 4, copied: 3, failed: 1 });
    expect(report.failures[0].path).toBe('/files/missing.pdf');
    for (const name of ['manual.pdf', 'firmware.bin', 'page.html']) {
      expectServed(await get(origin.url, `/old/files/${name}`), name, oldFiles.get(`/files/${name}`)!, name);
    }
  });

  it('reads non-images through from the old origin, imports them, and serves them from the cluster after', async () => {
    const rt = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--legacy-origin', oldUrl, '--legacy-import'], { env: { UGCFS_CLUSTER_SECRET: cluster.secret } });
    extra.push(rt);
    for (const name of Object.keys(EXPECTED)) {
      expectServed(await get(rt.url, `/files/${name}`), name, oldFiles.get(`/files/${name}`)!, `read-through ${name}`);
    }
    // An image read through is still cleaned like an upload.
    const photo = await get(rt.url, '/files/photo.jpg');
    expect(photo.status).toBe(200);
    expect(photo.headers.get('content-type')).toBe('image/jpeg');
    expect((await get(rt.url, '/files/manual.pdf?w=50')).status).toBe(415);

    // The lazy import mapped every one of them: an origin with no old origin serves them alike.
    await waitFor('the non-images to be imported', async () => {
      for (const name of Object.keys(EXPECTED)) {
        const res = await fetch(`${cluster.nameserver.url}/legacy?path=${encodeURIComponent(`/files/${name}`)}`, { headers: { 'x-ugcfs-secret': cluster.secret } });
        if (res.status !== 200) return false;
      }
      return true;
    });
    for (const name of Object.keys(EXPECTED)) {
      expectServed(await get(origin.url, `/files/${name}`), name, oldFiles.get(`/files/${name}`)!, `imported ${name}`);
    }
  });
});
