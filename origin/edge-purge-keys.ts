// The names a CDN edge files an answer under, so a delete can purge every copy by name
// (docs/ORIGIN.md, "Edge purge"). Every answer for a file carries its fid as a key; an
// answer reached by a legacy path also carries that path's key. Two headers say the same:
// `Surrogate-Key` (space-separated: Varnish xkey, Fastly, Akamai) and `Cache-Tag`
// (comma-separated: Cloudflare). A legacy path may hold spaces, commas, quotes or bytes no
// header token allows, and may be long, so its key is a digest of it: `legacy-` and the
// first 32 hex digits of the SHA-256 of the canonical legacy path (as the origin parses it,
// e.g. `/uploads/2019/a b.jpg`), which a CDN operator can compute to purge one path by hand.
import { createHash } from 'node:crypto';

export const SURROGATE_KEY = 'surrogate-key';
export const CACHE_TAG = 'cache-tag';

/** The key of a legacy path (its canonical form, parseTarget's `id`). */
export function legacyKey(path: string): string {
  return 'legacy-' + createHash('sha256').update(path).digest('hex').slice(0, 32);
}

/** The two key headers naming `keys` (fids and legacy keys are header-token safe). */
export function keyHeaders(keys: readonly string[]): Record<string, string> {
  return { [SURROGATE_KEY]: keys.join(' '), [CACHE_TAG]: keys.join(',') };
}

/**
 * Adds the key of the legacy path a file was reached by to an answer's headers (the cached
 * entry is shared with the fid's own URLs, so it names the fid only).
 */
export function addLegacyKey(headers: Record<string, string>, path: string): void {
  const key = legacyKey(path);
  const have = headers[SURROGATE_KEY];
  if (have === undefined || have === '') {
    Object.assign(headers, keyHeaders([key]));
    return;
  }
  if (have.split(' ').includes(key)) return;
  headers[SURROGATE_KEY] = `${have} ${key}`;
  headers[CACHE_TAG] = `${headers[CACHE_TAG]},${key}`;
}
