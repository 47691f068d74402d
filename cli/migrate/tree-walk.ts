// Walking a legacy upload tree. Nothing outside the tree may be read: symlinks are resolved
// and followed only when their target is a regular file inside the tree; symlinked
// directories are never entered (no loops, no escapes), and the file is opened with
// O_NOFOLLOW so a swap to a symlink after the walk is refused rather than followed.
import { constants, promises as fsp } from 'node:fs';
import { join, sep } from 'node:path';
import { UgcfsError } from '../../src/errors.ts';

export type WalkEntry =
  | { kind: 'file'; rel: string; abs: string }
  /** found but not to be migrated, with the reason (symlink out of the tree, special file) */
  | { kind: 'refused'; rel: string; reason: string }
  /** could not be read or named */
  | { kind: 'error'; rel: string; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Lists the tree under `root` in sorted order; names `skip` accepts are left out silently (migrate's own state files). */
export async function walkTree(root: string, skip: (name: string) => boolean = () => false): Promise<{ root: string; entries: WalkEntry[] }> {
  let realRoot: string;
  try {
    realRoot = await fsp.realpath(root);
    if (!(await fsp.stat(realRoot)).isDirectory()) throw new Error('not a directory');
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${root} is not a readable directory (${(err as Error).message})`);
  }
  const entries: WalkEntry[] = [];
  await walkDir(realRoot, realRoot, '', skip, entries);
  return { root: realRoot, entries };
}

async function walkDir(realRoot: string, absDir: string, relDir: string, skip: (name: string) => boolean, out: WalkEntry[]): Promise<void> {
  let names: Buffer[];
  try {
    names = await fsp.readdir(absDir, { encoding: 'buffer' });
  } catch (err) {
    out.push({ kind: 'error', rel: relDir || '.', reason: `cannot list directory: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
    return;
  }
  names.sort(Buffer.compare);
  for (const raw of names) {
    let name: string;
    try {
      name = utf8.decode(raw);
    } catch {
      // A name that is not UTF-8 has no URL anyone could have used for it in a UTF-8 world;
      // the operator must rename it, so it is reported rather than guessed at.
      out.push({ kind: 'error', rel: join(relDir, raw.toString('latin1')), reason: 'file name is not valid UTF-8' });
      continue;
    }
    const abs = join(absDir, name);
    const rel = relDir ? `${relDir}/${name}` : name;
    if (skip(name)) continue;
    let st;
    try {
      st = await fsp.lstat(abs);
    } catch (err) {
      out.push({ kind: 'error', rel, reason: `cannot stat: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
      continue;
    }
    if (st.isDirectory()) {
      await walkDir(realRoot, abs, rel, skip, out);
    } else if (st.isFile()) {
      out.push({ kind: 'file', rel, abs });
    } else if (st.isSymbolicLink()) {
      out.push(await resolveLink(realRoot, abs, rel));
    } else {
      out.push({ kind: 'refused', rel, reason: 'not a regular file (device, socket or pipe)' });
    }
  }
}

async function resolveLink(realRoot: string, abs: string, rel: string): Promise<WalkEntry> {
  let target: string;
  try {
    target = await fsp.realpath(abs);
  } catch {
    return { kind: 'refused', rel, reason: 'broken symlink' };
  }
  if (!target.startsWith(realRoot + sep)) return { kind: 'refused', rel, reason: 'symlink points outside the tree' };
  const st = await fsp.stat(target).catch(() => undefined);
  if (!st?.isFile()) return { kind: 'refused', rel, reason: 'symlink to a directory is not followed' };
  return { kind: 'file', rel, abs: target };
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
