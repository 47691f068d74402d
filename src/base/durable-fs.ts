// File-system steps that survive a power cut, for every role that keeps state on disk. A
// created or renamed name lasts only once its directory is fsynced, and a file's bytes only
// once the file is; LevelDB (1.20, in classic-level) syncs its own log and manifest but never
// the directory above the database, and not the first manifest of a new database, so a
// database created just before a power cut may not open again. The helpers here close
// those gaps; the ordering rule they serve is in dataserver/README.md ("Durability").
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Level } from 'level';

/** fsync of a directory makes the names created, renamed or unlinked in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function syncFile(path: string): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** mkdir -p whose every created level is durable (each new name's parent fsynced). */
export async function mkdirDurable(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = resolve(dir); !existsSync(d); d = dirname(d)) missing.unshift(d);
  if (missing.length === 0) return;
  await mkdir(dir, { recursive: true });
  for (const d of missing) await syncDir(dirname(d));
}

/** Replaces a file's contents all or nothing: a temp file written and fsynced, renamed over it, the directory fsynced. */
export async function writeFileDurable(path: string, data: string | Uint8Array, mode = 0o666): Promise<void> {
  const tmp = `${path}.tmp`;
  await rm(tmp, { force: true });
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

/** fsyncs every file and directory under `dir`, and `dir` in its parent. */
async function syncTree(dir: string): Promise<void> {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await syncTree(p);
    else if (e.isFile()) await syncFile(p);
  }
  await syncDir(dir);
  await syncDir(dirname(dir));
}

/**
 * Opens a LevelDB at `location`, creating it durably when it does not exist yet: created,
 * closed, every file and the directory fsynced, then opened again, so a power cut right
 * after creation leaves a database that opens (LevelDB does not sync a new one's first
 * manifest or its directory).
 */
export async function openLevelDurably<K, V>(location: string, options: ConstructorParameters<typeof Level<K, V>>[1]): Promise<Level<K, V>> {
  if (!existsSync(location)) {
    await mkdirDurable(dirname(location));
    const fresh = new Level<K, V>(location, options);
    await fresh.open();
    await fresh.close();
    await syncTree(location);
  }
  const db = new Level<K, V>(location, options);
  await db.open();
  return db;
}
