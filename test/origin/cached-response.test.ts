import { describe, expect, it } from 'vitest';
import { isUgcfsError } from '../../src/base/errors.ts';
import { answer, makeResponse, IMMUTABLE } from '../../origin/cached-response.ts';
import { MemoryCache } from '../../origin/memory-cache.ts';

const body = Buffer.from('0123456789');
const entry = makeResponse(body, { mime: 'image/png', etag: '"abc"', lastModified: Date.UTC(2024, 0, 2, 3, 4, 5, 678), negotiated: false, attachment: false });

function refused(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (isUgcfsError(err)) return `${err.status} ${err.code} ${err.headers?.['content-range']}`;
    throw err;
  }
  return undefined;
}

describe('answering from a cached response', () => {
  it('sends immutable caching headers and nothing a browser could run', () => {
    const a = answer(entry, {}, 'HIT');
    expect(a.status).toBe(200);
    expect(a.headers).toMatchObject({ 'cache-control': IMMUTABLE, etag: '"abc"', 'x-cache': 'HIT', 'x-content-type-options': 'nosniff', 'content-type': 'image/png' });
    expect(a.headers['content-security-policy']).toContain("default-src 'none'");
    expect(a.headers.vary).toBeUndefined();
  });

  it('answers 304 to matching validators only', () => {
    expect(answer(entry, { 'if-none-match': '"abc"' }, 'HIT').status).toBe(304);
    expect(answer(entry, { 'if-none-match': '"x", W/"abc"' }, 'HIT').status).toBe(304);
    expect(answer(entry, { 'if-none-match': '"x"' }, 'HIT').status).toBe(200);
    expect(answer(entry, { 'if-modified-since': new Date(Date.UTC(2024, 0, 2, 3, 4, 5)).toUTCString() }, 'HIT').status).toBe(304);
    expect(answer(entry, { 'if-modified-since': new Date(Date.UTC(2024, 0, 2, 3, 4, 4)).toUTCString() }, 'HIT').status).toBe(200);
    // If-None-Match wins over If-Modified-Since.
    expect(answer(entry, { 'if-none-match': '"x"', 'if-modified-since': new Date(Date.UTC(2030, 0, 1)).toUTCString() }, 'HIT').status).toBe(200);
  });

  it('serves single byte ranges and refuses unsatisfiable ones', () => {
    const a = answer(entry, { range: 'bytes=2-4' }, 'HIT');
    expect([a.status, a.body?.toString(), a.headers['content-range']]).toEqual([206, '234', 'bytes 2-4/10']);
    expect(answer(entry, { range: 'bytes=-3' }, 'HIT').body?.toString()).toBe('789');
    expect(answer(entry, { range: 'bytes=7-' }, 'HIT').body?.toString()).toBe('789');
    expect(answer(entry, { range: 'bytes=7-100' }, 'HIT').body?.toString()).toBe('789');
    expect(answer(entry, { range: 'bytes=0-1,4-5' }, 'HIT').status).toBe(200);
    expect(answer(entry, { range: 'bytes=2-4', 'if-range': '"old"' }, 'HIT').status).toBe(200);
    expect(refused(() => answer(entry, { range: 'bytes=10-' }, 'HIT'))).toBe('416 UGCFS_ERR_RANGE_NOT_SATISFIABLE bytes */10');
    expect(refused(() => answer(entry, { range: 'bytes=5-2' }, 'HIT'))).toBe('416 UGCFS_ERR_RANGE_NOT_SATISFIABLE bytes */10');
    expect(refused(() => answer(entry, { range: 'bytes=abc' }, 'HIT'))).toBe('416 UGCFS_ERR_RANGE_NOT_SATISFIABLE bytes */10');
    expect(refused(() => answer(entry, { range: 'bytes=-0' }, 'HIT'))).toBe('416 UGCFS_ERR_RANGE_NOT_SATISFIABLE bytes */10');
  });
});

describe('memory cache', () => {
  it('evicts least recently used entries past its byte bound', () => {
    const c = new MemoryCache<{ bytes: number }>(100, 60);
    c.set('a', { bytes: 40 });
    c.set('b', { bytes: 40 });
    c.get('a');
    c.set('c', { bytes: 40 });
    expect([c.get('a') !== undefined, c.get('b') !== undefined, c.get('c') !== undefined]).toEqual([true, false, true]);
    expect(c.usedBytes).toBe(80);
    expect(c.set('huge', { bytes: 61 })).toBe(false);
    expect(c.deleteWhere((k) => k === 'a')).toBe(1);
    expect(c.usedBytes).toBe(40);
  });
});
