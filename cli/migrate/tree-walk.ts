// Walking a legacy upload tree. Nothing outside the tree may be read: symlinks are resolved
// and followed only when their target is a regular file inside the tree; symlinked
// directories are never entered (no loops, no escapes), and the file is opened with
// O_NOFOLLOW so a swap to a symlink after the walk is refused rather than followed.
import { constants, promises as fsp } from 'node:fs';
import { join, sep } from 'node:path';
import { UgcfsError } from '../../src/base/errors.ts';

export type WalkEntry =
  /** `path` is the canonical legacy path (the table key) */
  | { kind: 'file'; rel: string; abs: string; path: string }
  /** found but not to be migrated, with the reason (symlink out of the tree, special file) */
  | { kind: 'refused'; rel: string; reason: string }
  /** could not be read or named */
  | { kind: 'error'; rel: string; reason: string };

export interface WalkOptions {
  /** the table key of a relative name; throws (with the reason) for a name that cannot be one */
  key(rel: string): string;
  /** names left out silently (migrate's own state files) */
  skip?(name: string): boolean;
  /** why a thrown error failed an entry */
  reason(err: unknown): string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Resolves the tree's root: the walk, and every symlink check, is against its real path. */
export async function treeRoot(root: string): Promise<string> {
  try {
    const realRoot = await fsp.realpath(root);
    if (!(await fsp.stat(realRoot)).isDirectory()) throw new Error('not a directory');
    return realRoot;
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${root} is not a readable directory (${(err as Error).message})`);
  }
}

/**
 * Yields the tree under `realRoot` (from treeRoot) depth first, each folder in byte order of
 * its names, one entry at a time: memory holds one folder listing per level of depth, never
 * the whole tree.
 *
 * Two names can share a key (an NFD and an NFC spelling of one name): whichever sorts first
 * wins, the other is an error entry, never silently merged. The key rules only change names
 * segment by segment, so keys can only collide between siblings of one folder; sibling
 * folders whose names collide are walked with one shared map of the keys seen inside them
 * (memory for those subtrees only, which a sane tree does not have).
 */
export function walkTree(realRoot: string, opts: WalkOptions): AsyncGenerator<WalkEntry> {
  return walkDir(realRoot, opts, realRoot, '', undefined);
}

async function* walkDir(realRoot: string, w: WalkOptions, absDir: string, relDir: string, scope: Map<string, string> | undefined): AsyncGenerator<WalkEntry> {
  let raw: Buffer[];
  try {
    raw = await fsp.readdir(absDir, { encoding: 'buffer' });
  } catch (err) {
    yield { kind: 'error', rel: relDir || '.', reason: `cannot list directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
    return;
  }
  raw.sort(Buffer.compare);
  const names = raw.map((b): string | Buffer => {
    try {
      return utf8.decode(b);
    } catch {
      return b;
    }
  });
  const relOf = (name: string) => (relDir ? `${relDir}/${name}` : name);
  // Keys of this listing, to find the siblings that collide before walking any of them.
  const keys = names.map((n): { key: string } | { error: string } | undefined => {
    if (typeof n !== 'string' || w.skip?.(n)) return undefined;
    try {
      return { key: w.key(relOf(n)) };
    } catch (err) {
      return { error: w.reason(err) };
    }
  });
  const uses = new Map<string, number>();
  for (const k of keys) if (k && 'key' in k) uses.set(k.key, (uses.get(k.key) ?? 0) + 1);
  const contested = (k: string) => (uses.get(k) ?? 0) > 1;
  const firstFile = new Map<string, string>();
  const dirScopes = new Map<string, Map<string, string>>();

  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (typeof name !== 'string') {
      // A name that is not UTF-8 has no URL anyone could have used for it in a UTF-8 world;
      // the operator must rename it, so it is reported rather than guessed at.
      yield { kind: 'error', rel: join(relDir, name.toString('latin1')), reason: 'file name is not valid UTF-8' };
      continue;
    }
    if (w.skip?.(name)) continue;
    const abs = join(absDir, name);
    const rel = relOf(name);
    const k = keys[i];
    let st;
    try {
      st = await fsp.lstat(abs);
    } catch (err) {
      yield { kind: 'error', rel, reason: `cannot stat: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
      continue;
    }
    if (st.isDirectory()) {
      let sub = scope;
      if (!sub && k && 'key' in k && contested(k.key)) {
        sub = dirScopes.get(k.key);
        if (!sub) dirScopes.set(k.key, (sub = new Map()));
      }
      yield* walkDir(realRoot, w, abs, rel, sub);
      continue;
    }
    let entry: { kind: 'file'; abs: string } | { kind: 'refused'; reason: string };
    if (st.isFile()) entry = { kind: 'file', abs };
    else if (st.isSymbolicLink()) entry = await resolveLink(realRoot, abs);
    else entry = { kind: 'refused', reason: 'not a regular file (device, socket or pipe)' };
    if (entry.kind === 'refused') {
      yield { kind: 'refused', rel, reason: entry.reason };
      continue;
    }
    if (!k || 'error' in k) {
      yield { kind: 'error', rel, reason: k?.error ?? 'no key' };
      continue;
    }
    const seen = scope ?? (contested(k.key) ? firstFile : undefined);
    const first = seen?.get(k.key);
    if (first !== undefined) {
      yield { kind: 'error', rel, reason: `has the same legacy path as ${first}` };
      continue;
    }
    seen?.set(k.key, rel);
    yield { kind: 'file', rel, abs: entry.abs, path: k.key };
  }
}

async function resolveLink(realRoot: string, abs: string): Promise<{ kind: 'file'; abs: string } | { kind: 'refused'; reason: string }> {
  let target: string;
  try {
    target = await fsp.realpath(abs);
  } catch {
    return { kind: 'refused', reason: 'broken symlink' };
  }
  if (!target.startsWith(realRoot + sep)) return { kind: 'refused', reason: 'symlink points outside the tree' };
  const st = await fsp.stat(target).catch(() => undefined);
  if (!st?.isFile()) return { kind: 'refused', reason: 'symlink to a directory is not followed' };
  return { kind: 'file', abs: target };
}

/**
 * Counts what walkTree will yield, cheaply (no per-file stat: the directory entries' types),
 * so progress can show a total while the walk and the copying go on. Only an estimate: a
 * folder that cannot be listed counts nothing here and one entry in the walk.
 */
export async function countTree(realRoot: string, skip: (name: string) => boolean, onCount: (n: number) => void, signal?: AbortSignal): Promise<number> {
  let n = 0;
  const count = async (dir: string): Promise<void> => {
    let d;
    try {
      d = await fsp.opendir(dir, { bufferSize: 256 });
    } catch {
      return;
    }
    for await (const e of d) {
      if (signal?.aborted) break;
      if (skip(e.name)) continue;
      if (e.isDirectory()) await count(join(dir, e.name));
      else if (++n % 1000 === 0) onCount(n);
    }
  };
  await count(realRoot);
  onCount(n);
  return n;
}

/** Reads a whole regular file, refusing symlinks, non-files and files over `maxBytes`. */
export async function readTreeFile(abs: string, maxBytes: number): Promise<Buffer> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(abs, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UgcfsError('UGCFS_ERR_BAD_PATH', code === 'ELOOP' ? 'became a symlink during the walk; not followed' : `cannot open: ${code ?? (err as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new UgcfsError('UGCFS_ERR_BAD_PATH', 'not a regular file');
    if (st.size > maxBytes) throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `${st.size} bytes is over the ${maxBytes}-byte upload limit`);
    // Read up to one byte past the limit, so a file that grew since the stat is caught too.
    const buf = Buffer.allocUnsafe(Math.min(st.size, maxBytes) + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) break;
    }
    if (n === buf.length) {
      if (n > maxBytes) throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `grew over the ${maxBytes}-byte upload limit while being read`);
      // Storing a half-written file would be worse than a retry on the next run.
      throw new UgcfsError('UGCFS_ERR_CONFLICT', 'file grew while being read');
    }
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}
