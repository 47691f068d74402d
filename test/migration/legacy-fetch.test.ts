// The old-origin fetcher's limits, against a real HTTP server that misbehaves on purpose:
// lying lengths, trickled bodies, redirects, validators, retries.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { fetchLegacy, legacyUrl } from '../../origin/legacy-fetch.ts';
import { withRetries } from '../../cli/migrate/migrate-sources.ts';
import { boundedSlot, readThroughResolver } from '../../origin/legacy-read-through.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CORPUS } from '../helpers/proc.ts';
import { isUgcfsError, UgcfsError } from '../../src/base/errors.ts';

let server: Server;
let base: string;
const seen: string[] = [];
const timers = new Set<NodeJS.Timeout>();

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(decodeURIComponent(req.url ?? ''));
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    switch (path) {
      case '/ok/a b 图.jpg':
        if (req.headers['if-none-match'] === '"v1"') { res.writeHead(304).end(); return; }
        res.writeHead(200, { etag: '"v1"', 'last-modified': 'Sat, 01 Jun 2019 00:00:00 GMT' }).end(Buffer.alloc(1000, 7));
        return;
      case '/lying-length':
        // Chunked, no Content-Length: only the streamed count can catch it.
        res.writeHead(200);
        for (let i = 0; i < 20; i++) res.write(Buffer.alloc(1000, 1));
        res.end();
        return;
      case '/declared-large':
        res.writeHead(200, { 'content-length': '5000000' });
        res.write(Buffer.alloc(10));
        return; // never finishes; the declared length alone must refuse it
      case '/trickle': {
        res.writeHead(200);
        const t = setInterval(() => res.write('x'), 50);
        timers.add(t);
        res.on('close', () => clearInterval(t));
        return;
      }
      case '/redirect':
        res.writeHead(302, { location: 'http://127.0.0.1:1/elsewhere.jpg' }).end();
        return;
      case '/photo.jpg':
        setTimeout(() => res.writeHead(200).end(readFileSync(join(CORPUS, 'exif', 'geodegrees_as_string.jpg'))), 100);
        return;
      case '/notes.txt':
        res.writeHead(200).end('plain text, not an image');
        return;
      case '/gone':
        res.writeHead(410).end();
        return;
      default:
        res.writeHead(404).end('not here');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});

afterAll(async () => {
  for (const t of timers) clearInterval(t);
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const opts = { timeoutMs: 2000, maxBytes: 10_000 };
async function code(p: Promise<unknown>): Promise<string> {
  return p.then(() => 'ok', (e) => (isUgcfsError(e) ? e.code : String(e)));
}

describe('fetchLegacy', () => {
  it('fetches by the encoded canonical path and honours validators', async () => {
    expect(legacyUrl(base + '/', '/ok/a b 图.jpg')).toBe(`${base}/ok/a%20b%20${encodeURIComponent('图')}.jpg`);
    const r = await fetchLegacy(base, '/ok/a b 图.jpg', opts);
    expect(r).toMatchObject({ status: 'ok', etag: '"v1"', lastModified: 'Sat, 01 Jun 2019 00:00:00 GMT' });
    expect(r.status === 'ok' && r.data.length).toBe(1000);
    expect(await fetchLegacy(base, '/ok/a b 图.jpg', { ...opts, etag: '"v1"' })).toEqual({ status: 'not-modified' });
  });

  it('keeps the old origin\'s 404 and 410 as not-found', async () => {
    expect(await fetchLegacy(base, '/nope.jpg', opts)).toEqual({ status: 'not-found', httpStatus: 404 });
    expect(await fetchLegacy(base, '/gone', opts)).toEqual({ status: 'not-found', httpStatus: 410 });
  });

  it('refuses oversize bodies whether the length is declared or not, and answers on time', async () => {
    expect(await code(fetchLegacy(base, '/lying-length', opts))).toBe('UGCFS_ERR_TOO_LARGE');
    expect(await code(fetchLegacy(base, '/declared-large', opts))).toBe('UGCFS_ERR_TOO_LARGE');
    // A peer trickling a byte every 50 ms never trips an idle timeout; the overall deadline must.
    expect(await code(fetchLegacy(base, '/trickle', { timeoutMs: 500, maxBytes: 1_000_000 }))).toBe('UGCFS_ERR_TIMEOUT');
  });

  it('does not follow redirects, and names an unreachable origin', async () => {
    expect(await code(fetchLegacy(base, '/redirect', opts))).toBe('UGCFS_ERR_UPSTREAM');
    expect(seen.some((u) => u.includes('elsewhere'))).toBe(false);
    expect(await code(fetchLegacy('http://127.0.0.1:1', '/a.jpg', opts))).toBe('UGCFS_ERR_UPSTREAM');
  });
});

describe('withRetries', () => {
  it('retries what may pass and stops at once on what never will', async () => {
    let calls = 0;
    const flaky = () => withRetries(2, async () => {
      calls++;
      if (calls < 3) throw new UgcfsError('UGCFS_ERR_UPSTREAM', 'down');
      return 'up';
    });
    expect(await flaky()).toBe('up');
    expect(calls).toBe(3);
    calls = 0;
    expect(await code(withRetries(3, async () => { calls++; throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND'); }))).toBe('UGCFS_ERR_LEGACY_NOT_FOUND');
    expect(calls).toBe(1);
    calls = 0;
    expect(await code(withRetries(1, async () => { calls++; throw new UgcfsError('UGCFS_ERR_TIMEOUT'); }))).toBe('UGCFS_ERR_TIMEOUT');
    expect(calls).toBe(2);
  });
});

describe('readThroughResolver', () => {
  const resolver = () =>
    readThroughResolver({
      base: { lookup: async () => undefined },
      legacyOrigin: base,
      maxBytes: 1_000_000,
      timeoutMs: 2000,
      limits: { maxPixels: 100_000_000, timeoutMs: 5000 },
    });
  const hits = (path: string) => seen.filter((u) => u.startsWith(path)).length;

  it('shares one fetch between concurrent misses, remembers the old 404, and serves cleaned bytes', async () => {
    const r = resolver();
    const got = await Promise.all([1, 2, 3].map(() => r.fetchThrough!('/photo.jpg')));
    expect(hits('/photo.jpg')).toBe(1);
    expect(got[0]!.mime).toBe('image/jpeg');
    // The GPS EXIF block is gone, as from an upload.
    expect(got[0]!.data.length).toBeLessThan(readFileSync(join(CORPUS, 'exif', 'geodegrees_as_string.jpg')).length);
    expect(await r.fetchThrough!('/missing-a.jpg')).toBeUndefined();
    expect(await r.fetchThrough!('/missing-a.jpg')).toBeUndefined();
    expect(hits('/missing-a.jpg')).toBe(1);
    // A file that is not an image is served too, byte for byte, typed from its bytes.
    expect(await r.fetchThrough!('/notes.txt')).toEqual({ data: Buffer.from('plain text, not an image'), mime: 'text/plain; charset=utf-8' });
  });
});

describe('boundedSlot', () => {
  it('never runs more than its bound, even as slots are handed over', async () => {
    const slot = boundedSlot(2);
    let running = 0;
    let peak = 0;
    const job = async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    };
    await Promise.all(Array.from({ length: 20 }, () => slot(job)));
    // Newcomers arriving while slots change hands must queue too.
    await Promise.all(Array.from({ length: 10 }, (_, i) => new Promise((r) => setTimeout(r, i * 3)).then(() => slot(job))));
    expect(peak).toBe(2);
  });
});
