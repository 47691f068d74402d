// Where migrated files come from: a local tree (`DIR --prefix`) or a list of paths on an
// old HTTP origin (`--from-url BASE --list FILE`). Both yield, one at a time, MigrateItems
// keyed by the canonical legacy path and what was refused before any byte was read.
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { isUgcfsError, UgcfsError } from '../../src/base/errors.ts';
import { joinLegacyPath, legacyPathFromUrl } from '../../src/wire/legacy-path.ts';
import { fetchLegacy } from '../../origin/legacy-fetch.ts';
import { reasonOf, type SourceEntry } from './migrate-run.ts';
import { countTree, readTreeFile, treeRoot, walkTree } from './tree-walk.ts';
import { PathSet } from './path-set.ts';
import { STATE_FILE_PREFIX } from './migrate-state.ts';

export interface Source {
  /** the entries one at a time, in the source's order */
  entries: AsyncIterable<SourceEntry>;
  /** counted so far by a cheap pass alongside the run, and whether that count is complete */
  expected(): { total: number; final: boolean };
  close(): Promise<void>;
}

export async function treeSource(dir: string, prefix: string, maxBytes: number): Promise<Source> {
  const root = await treeRoot(dir);
  // A state file kept inside the tree (the default when migrating the current directory) is not content.
  const skip = (name: string) => name.startsWith(STATE_FILE_PREFIX);
  let counted = 0;
  let final = false;
  const stop = new AbortController();
  const counting = countTree(root, skip, (n) => (counted = n), stop.signal).then(
    () => void (final = true),
    () => undefined,
  );
  async function* entries(): AsyncGenerator<SourceEntry> {
    for await (const e of walkTree(root, { key: (rel) => joinLegacyPath(prefix, rel), skip, reason: reasonOf })) {
      if (e.kind === 'refused') yield { label: e.rel, outcome: 'skipped', reason: e.reason };
      else if (e.kind === 'error') yield { label: e.rel, outcome: 'failed', reason: e.reason };
      else {
        const abs = e.abs;
        yield { path: e.path, label: e.rel, load: async () => ({ status: 'ok', data: await readTreeFile(abs, maxBytes) }) };
      }
    }
  }
  return {
    entries: entries(),
    expected: () => ({ total: counted, final }),
    close: () => {
      stop.abort();
      return counting;
    },
  };
}

export interface UrlSourceOptions {
  base: string;
  listFile: string;
  prefix: string;
  maxBytes: number;
  timeoutMs: number;
  retries: number;
}

/** The list's lines, streamed: a list of tens of millions of URLs is never held whole. */
function listLines(file: string): AsyncIterable<string> {
  return createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
}

const isEntryLine = (raw: string) => {
  const line = raw.trim();
  return line !== '' && !line.startsWith('#');
};

/**
 * List lines are URL paths as an access log or an old page holds them (percent-encoding is
 * decoded once), or full URLs under BASE; blank lines and `#` comments are ignored, and a
 * query or fragment is not part of the key. An access log repeats paths, so each key is
 * handled once: the keys seen are kept on disk (a PathSet), not in memory.
 */
export async function urlSource(opts: UrlSourceOptions): Promise<Source> {
  try {
    await (await open(opts.listFile, 'r')).close();
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `cannot read --list ${opts.listFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const base = opts.base.replace(/\/+$/, '');
  let counted = 0;
  let final = false;
  const stop = new AbortController();
  const counting = (async () => {
    for await (const line of listLines(opts.listFile)) {
      if (stop.signal.aborted) return;
      if (isEntryLine(line)) counted++;
    }
    final = true;
  })().catch(() => undefined);
  const seen = await PathSet.open();
  async function* entries(): AsyncGenerator<SourceEntry> {
    for await (const rawLine of listLines(opts.listFile)) {
      if (!isEntryLine(rawLine)) continue;
      const line = rawLine.trim();
      let urlPath = line;
      if (/^https?:\/\//i.test(line)) {
        if (!line.startsWith(base + '/')) {
          yield { label: line, outcome: 'failed', reason: `not under --from-url ${base}` };
          continue;
        }
        urlPath = line.slice(base.length);
      }
      urlPath = urlPath.replace(/[?#].*$/, '');
      let oldPath: string;
      let key: string;
      try {
        oldPath = legacyPathFromUrl(urlPath.startsWith('/') ? urlPath : '/' + urlPath);
        key = opts.prefix ? joinLegacyPath(opts.prefix, oldPath) : oldPath;
      } catch (err) {
        yield { label: line, outcome: 'failed', reason: reasonOf(err) };
        continue;
      }
      // Repeats are not counted in the total: the estimate counted them, so it shrinks by one.
      if (!(await seen.add(key))) {
        counted--;
        continue;
      }
      const path = oldPath;
      yield {
        path: key,
        label: oldPath,
        load: (validators) =>
          withRetries(opts.retries, async () => {
            const r = await fetchLegacy(base, path, { timeoutMs: opts.timeoutMs, maxBytes: opts.maxBytes, ...(validators ?? {}) });
            if (r.status === 'not-found') throw new UgcfsError('UGCFS_ERR_LEGACY_NOT_FOUND', `old origin answered HTTP ${r.httpStatus}`);
            return r;
          }),
      };
    }
  }
  return {
    entries: entries(),
    expected: () => ({ total: Math.max(0, counted), final }),
    close: async () => {
      stop.abort();
      await counting;
      await seen.close();
    },
  };
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
