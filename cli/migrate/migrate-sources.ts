// Where migrated files come from: a local tree (`DIR --prefix`) or a list of paths on an
// old HTTP origin (`--from-url BASE --list FILE`). Both yield MigrateItems keyed by the
// canonical legacy path, plus what was refused before any byte was read.
import { readFileSync } from 'node:fs';
import { isUgcfsError, UgcfsError } from '../../src/errors.ts';
import { joinLegacyPath, legacyPathFromUrl } from '../../src/legacy-path.ts';
import { fetchLegacy } from '../../src/origin/legacy-fetch.ts';
import type { MigrateItem, PreOutcome } from './migrate-run.ts';
import { readTreeFile, walkTree } from './tree-walk.ts';
import { STATE_FILE_PREFIX } from './migrate-state.ts';

export interface Source {
  items: MigrateItem[];
  pre: PreOutcome[];
}

function reason(err: unknown): string {
  return isUgcfsError(err) ? `${err.message} (${err.code})` : (err as Error).message;
}

export async function treeSource(dir: string, prefix: string, maxBytes: number): Promise<Source> {
  // A state file kept inside the tree (the default when migrating the current directory) is not content.
  const { entries } = await walkTree(dir, (name) => name.startsWith(STATE_FILE_PREFIX));
  const items: MigrateItem[] = [];
  const pre: PreOutcome[] = [];
  const seen = new Map<string, string>();
  for (const e of entries) {
    if (e.kind === 'refused') { pre.push({ label: e.rel, outcome: 'skipped', reason: e.reason }); continue; }
    if (e.kind === 'error') { pre.push({ label: e.rel, outcome: 'failed', reason: e.reason }); continue; }
    let path: string;
    try {
      path = joinLegacyPath(prefix, e.rel);
    } catch (err) {
      pre.push({ label: e.rel, outcome: 'failed', reason: reason(err) });
      continue;
    }
    // Two names can share a key (an NFD and an NFC spelling of one name): whichever sorts
    // first wins, and the other is reported, never silently merged.
    const first = seen.get(path);
    if (first !== undefined) {
      pre.push({ label: e.rel, outcome: 'failed', reason: `has the same legacy path as ${first}` });
      continue;
    }
    seen.set(path, e.rel);
    const abs = e.abs;
    items.push({ path, label: e.rel, load: async () => ({ status: 'ok', data: await readTreeFile(abs, maxBytes) }) });
  }
  return { items, pre };
}

export interface UrlSourceOptions {
  base: string;
  listFile: string;
  prefix: string;
  maxBytes: number;
  timeoutMs: number;
  retries: number;
}

/**
 * List lines are URL paths as an access log or an old page holds them (percent-encoding is
 * decoded once), or full URLs under BASE; blank lines and `#` comments are ignored, and a
 * query or fragment is not part of the key.
 */
export function urlSource(opts: UrlSourceOptions): Source {
  let text: string;
  try {
    text = readFileSync(opts.listFile, 'utf8');
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `cannot read --list ${opts.listFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const items: MigrateItem[] = [];
  const pre: PreOutcome[] = [];
  const seen = new Set<string>();
  const base = opts.base.replace(/\/+$/, '');
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    let urlPath = line;
    if (/^https?:\/\//i.test(line)) {
      if (!line.startsWith(base + '/')) { pre.push({ label: line, outcome: 'failed', reason: `not under --from-url ${base}` }); continue; }
      urlPath = line.slice(base.length);
    }
    urlPath = urlPath.replace(/[?#].*$/, '');
    let oldPath: string;
    let key: string;
    try {
      oldPath = legacyPathFromUrl(urlPath.startsWith('/') ? urlPath : '/' + urlPath);
      key = opts.prefix ? joinLegacyPath(opts.prefix, oldPath) : oldPath;
    } catch (err) {
      pre.push({ label: line, outcome: 'failed', reason: reason(err) });
      continue;
    }
    if (seen.has(key)) continue;
    seen.add(key);
    items.push({
      path: key,
      label: oldPath,
      load: (validators) =>
        withRetries(opts.retries, async () => {
          const r = await fetchLegacy(base, oldPath, { timeoutMs: opts.timeoutMs, maxBytes: opts.maxBytes, ...(validators ?? {}) });
          if (r.status === 'not-found') throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND', `old origin answered HTTP ${r.httpStatus}`);
          return r;
        }),
    });
  }
  return { items, pre };
}

/** Retries what may pass on a second try (peer down, 5xx, timeout); a 404 or an oversize file never does. */
export async function withRetries<T>(retries: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const transient = isUgcfsError(err, 'UGCFS_ERR_UPSTREAM') || isUgcfsError(err, 'UGCFS_ERR_TIMEOUT') || isUgcfsError(err, 'UGCFS_ERR_UNAVAILABLE');
      if (!transient || attempt >= retries) throw err;
      await new Promise((r) => setTimeout(r, 200 * 4 ** attempt));
    }
  }
}
