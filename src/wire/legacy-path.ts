// Legacy paths: the one canonical form of an old URL path, used as the legacy table's key by
// the name server, the origin and `ugcfs migrate`. Two spellings of the same old URL must
// land on the same key, and no spelling may climb above the root, so every producer of a key
// goes through here. Canonical form: starts with "/", decoded (no percent escapes), Unicode
// NFC, segments joined by single "/", no "." or ".." segments, no control characters, case
// kept (TFS names are case-sensitive), at most MAX_LEGACY_PATH_BYTES of UTF-8.
// docs/MIGRATION.md lists the rules with examples.
import { UgcfsError } from '../base/errors.ts';

export const MAX_LEGACY_PATH_BYTES = 1024;
export const MAX_LEGACY_SEGMENT_BYTES = 255;

const utf8 = new TextDecoder('utf-8', { fatal: true });
// C0 controls, DEL and C1 controls: never part of a real file name, and dangerous in logs.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function bad(why: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_PATH', `bad legacy path: ${why}`);
}

/**
 * Canonicalises a path as it appears on the wire (the URL path without its query): valid
 * `%XX` escapes are decoded exactly once, a `%` that starts no escape stays literal (old
 * servers happily served `100%.jpg`), and the decoded bytes must be UTF-8.
 */
export function legacyPathFromUrl(raw: string): string {
  if (typeof raw !== 'string') throw bad('not a string');
  // Bound the work before decoding: an escape is 3 characters for 1 byte.
  if (raw.length > MAX_LEGACY_PATH_BYTES * 3) throw bad(`longer than ${MAX_LEGACY_PATH_BYTES} bytes`);
  // Checked before decoding, which would otherwise turn a lone surrogate into U+FFFD silently.
  if (LONE_SURROGATE.test(raw)) throw bad('contains a lone surrogate');
  return canonical(percentDecode(raw));
}

/**
 * Canonicalises an already-decoded path (a file name relative to a migrated tree, a path in
 * a JSON body or a decoded query parameter). Never decodes, so it is idempotent and a file
 * really named `a%20b.jpg` keeps its percent sign.
 */
export function legacyPathFromName(name: string): string {
  if (typeof name !== 'string') throw bad('not a string');
  if (name.length > MAX_LEGACY_PATH_BYTES * 2) throw bad(`longer than ${MAX_LEGACY_PATH_BYTES} bytes`);
  return canonical(name);
}

/** The URL form of a canonical path: each segment percent-encoded, for fetching it from an old origin. */
export function encodeLegacyPath(path: string): string {
  return path.split('/').map((s) => encodeURIComponent(s)).join('/');
}

/** Joins a migration prefix ("/uploads") and a relative name ("2019/05/a.jpg") into a canonical path. */
export function joinLegacyPath(prefix: string, relative: string): string {
  return legacyPathFromName(`${prefix}/${relative}`);
}

function percentDecode(raw: string): string {
  if (!raw.includes('%')) return raw;
  const bytes: number[] = [];
  for (let i = 0; i < raw.length; ) {
    const c = raw.charCodeAt(i);
    if (c === 0x25 && i + 2 < raw.length && isHex(raw.charCodeAt(i + 1)) && isHex(raw.charCodeAt(i + 2))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 3;
      continue;
    }
    // Re-encode the literal character as UTF-8 so escapes and literals mix in one byte stream.
    const cp = raw.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
    i += ch.length;
  }
  try {
    return utf8.decode(Uint8Array.from(bytes));
  } catch {
    throw bad('percent escapes do not decode to UTF-8');
  }
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function canonical(decoded: string): string {
  if (LONE_SURROGATE.test(decoded)) throw bad('contains a lone surrogate');
  const nfc = decoded.normalize('NFC');
  if (CONTROL.test(nfc)) throw bad('contains a control character');
  const out: string[] = [];
  for (const seg of nfc.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) throw bad('".." escapes the root');
      out.pop();
      continue;
    }
    if (Buffer.byteLength(seg, 'utf8') > MAX_LEGACY_SEGMENT_BYTES) throw bad(`a segment is longer than ${MAX_LEGACY_SEGMENT_BYTES} bytes`);
    out.push(seg);
  }
  if (out.length === 0) throw bad('names no file');
  const path = '/' + out.join('/');
  if (Buffer.byteLength(path, 'utf8') > MAX_LEGACY_PATH_BYTES) throw bad(`longer than ${MAX_LEGACY_PATH_BYTES} bytes`);
  return path;
}
