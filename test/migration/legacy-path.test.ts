// The legacy path normaliser decides which old URLs share a table key and which are refused,
// so its laws are checked over generated input, not just examples.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { encodeLegacyPath, joinLegacyPath, legacyPathFromName, legacyPathFromUrl, MAX_LEGACY_PATH_BYTES } from '../../src/wire/legacy-path.ts';
import { isUgcfsError } from '../../src/base/errors.ts';

// Segments drawn from the characters that make legacy paths hard: spaces, percent signs,
// dots, CJK, combining marks (NFD), emoji, plus ordinary names.
const segChar = fc.constantFrom('a', 'B', '1', ' ', '%', '.', '_', '-', '+', '#', '?', '&', '\\', 'é', 'e\u0301', '图', '片', '😀', 'Å', 'A\u030a');
const segment = fc.oneof(
  fc.array(segChar, { minLength: 1, maxLength: 8 }).map((a) => a.join('')),
  fc.constantFrom('.', '..', '', 'T1FOZHB4ET1RCvBVdK.jpg', 'a.jpg_200x200.jpg'),
);
const rawPath = fc.array(segment, { minLength: 1, maxLength: 8 }).map((s) => '/' + s.join('/'));

function attempt(f: () => string): string | 'refused' {
  try {
    return f();
  } catch (err) {
    if (!isUgcfsError(err, 'UGCFS_ERR_BAD_PATH')) throw err;
    return 'refused';
  }
}

function assertCanonical(p: string): void {
  expect(p.startsWith('/')).toBe(true);
  expect(p).not.toMatch(/\/\//);
  expect(p.split('/').slice(1)).not.toContain('..');
  expect(p.split('/').slice(1)).not.toContain('.');
  expect(p.split('/').slice(1)).not.toContain('');
  expect(p.normalize('NFC')).toBe(p);
  expect(p).not.toMatch(/[\u0000-\u001f\u007f]/);
  expect(Buffer.byteLength(p)).toBeLessThanOrEqual(MAX_LEGACY_PATH_BYTES);
}

describe('legacy path normaliser', () => {
  it('canonicalises names idempotently', () => {
    fc.assert(
      fc.property(rawPath, (p) => {
        const once = attempt(() => legacyPathFromName(p));
        if (once === 'refused') return;
        assertCanonical(once);
        expect(legacyPathFromName(once)).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips every canonical path through its URL form', () => {
    fc.assert(
      fc.property(rawPath, (p) => {
        const c = attempt(() => legacyPathFromName(p));
        if (c === 'refused') return;
        expect(legacyPathFromUrl(encodeLegacyPath(c))).toBe(c);
      }),
      { numRuns: 2000 },
    );
  });

  it('gives NFD and NFC spellings, and encoded and plain spellings, one key', () => {
    fc.assert(
      fc.property(rawPath, (p) => {
        const a = attempt(() => legacyPathFromName(p.normalize('NFD')));
        const b = attempt(() => legacyPathFromName(p.normalize('NFC')));
        expect(a).toBe(b);
        const viaUrl = attempt(() => legacyPathFromUrl(p.split('/').map(encodeURIComponent).join('/')));
        expect(viaUrl).toBe(b);
      }),
      { numRuns: 1000 },
    );
  });

  it('never lets ".." climb above the root, whatever the spelling', () => {
    const dotdot = fc.constantFrom('..', '%2e%2e', '%2E.', '.%2e');
    fc.assert(
      fc.property(fc.array(fc.constantFrom('a', 'b c'), { maxLength: 3 }), dotdot, fc.array(fc.constantFrom('etc', 'passwd'), { minLength: 1, maxLength: 2 }), (down, up, rest) => {
        const ups = Array.from({ length: down.length + 1 }, () => up);
        const url = '/' + [...down, ...ups, ...rest].join('/');
        expect(attempt(() => legacyPathFromUrl(url))).toBe('refused');
        expect(attempt(() => legacyPathFromUrl(url.replaceAll('/', '%2F')))).toBe('refused');
      }),
    );
  });

  it('handles the spellings old URLs really have', () => {
    expect(legacyPathFromUrl('/uploads/2019/05/a%20b.jpg')).toBe('/uploads/2019/05/a b.jpg');
    expect(legacyPathFromUrl('/uploads//2019/./05/a.jpg')).toBe('/uploads/2019/05/a.jpg');
    expect(legacyPathFromUrl('/uploads/x/../a.jpg')).toBe('/uploads/a.jpg');
    expect(legacyPathFromUrl('/%E5%9B%BE%E7%89%87/%C3%A9t%C3%A9.png')).toBe('/图片/été.png');
    expect(legacyPathFromUrl('/100%.jpg')).toBe('/100%.jpg');
    expect(legacyPathFromUrl('/a%2520b.jpg')).toBe('/a%20b.jpg');
    expect(legacyPathFromName('/a%20b.jpg')).toBe('/a%20b.jpg');
    expect(legacyPathFromUrl('/T1FOZHB4ET1RCvBVdK.jpg')).toBe('/T1FOZHB4ET1RCvBVdK.jpg');
    expect(joinLegacyPath('/uploads', 'new folder/café.jpg')).toBe('/uploads/new folder/café.jpg');
    expect(joinLegacyPath('/uploads/', '/a.jpg')).toBe('/uploads/a.jpg');
  });

  it('refuses what names no file or cannot be a name', () => {
    for (const bad of ['/', '', '/..', '/a/../..', '/a%00.jpg', '/a\nb.jpg', '/%FF%FE.jpg', '/%C3.jpg', '/\uD800.jpg', '/' + 'a'.repeat(256), '/' + 'ab/'.repeat(400)]) {
      expect(attempt(() => legacyPathFromUrl(bad)), JSON.stringify(bad.slice(0, 40))).toBe('refused');
    }
  });
});
