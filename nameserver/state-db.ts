// The single name server's LevelDB, opened durably. Everything in it is reached through the
// metadata store (metadata-store/leveldb.ts): one JSON namespace per concern, `!name!key`.
import type { Level } from 'level';
import { openLevelDurably } from '../src/base/durable-fs.ts';
import { LevelMetadataStore, type Namespace } from './metadata-store/index.ts';

export type RootDb = Level<string, string>;

/** Namespaces owned by the core name server; extensions take their own through NameserverContext.namespace(). */
export const CORE_NAMESPACES = ['meta', 'blocks', 'dataservers', 'pending-deletes', 'delete-feed', 'legacy', 'ops'] as const;

/** Opens (or durably creates: src/base/durable-fs.ts) the state; a power cut right after creation must not lose it. */
export function openStateDb(dir: string): Promise<RootDb> {
  return openLevelDurably<string, string>(dir, {});
}

/** One namespace of an open state database (tools and tests that hold the database itself). */
export function jsonSublevel<V>(db: RootDb, name: string): Namespace<V> {
  return LevelMetadataStore.wrap(db).namespace<V>(name);
}

/** Write option of writes that must be on disk before they are acted on (the store's default). */
export const SYNC = { sync: true } as const;
