// The name server's LevelDB: one database, one sublevel per concern. Extensions open their
// own sublevel through NameserverContext.sublevel(); the names below are taken.
import type { Level } from 'level';
import { openLevelDurably } from '../src/base/durable-fs.ts';
import type { AbstractSublevel } from 'abstract-level';

export type RootDb = Level<string, string>;
export type Store<V> = AbstractSublevel<RootDb, string | Buffer | Uint8Array, string, V>;

/** Sublevels owned by the core name server. */
export const CORE_SUBLEVELS = ['meta', 'blocks', 'dataservers', 'pending-deletes', 'delete-feed'] as const;

/** Opens (or durably creates: src/base/durable-fs.ts) the state; a power cut right after creation must not lose it. */
export function openStateDb(dir: string): Promise<RootDb> {
  return openLevelDurably<string, string>(dir, {});
}

export function jsonSublevel<V>(db: RootDb, name: string): Store<V> {
  return db.sublevel<string, V>(name, { valueEncoding: 'json' }) as unknown as Store<V>;
}

/** Put option for writes that must be on disk before we act on them (classic-level honours `sync` through sublevels). */
export const SYNC = { sync: true } as unknown as Record<string, never>;
