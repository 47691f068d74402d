// A standby's registry on take-over: data servers beat every name server at once, so a standby
// often sees a server's heartbeat before the leader's record of it. Once that record arrives
// saying the same, the new leader has nothing of it to persist: a take-over writes only what
// the standby knows that the shared state does not (one synced write each, before it leads).
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Registry } from '../../nameserver/registry.ts';
import { jsonSublevel, openStateDb, type RootDb } from '../../nameserver/state-db.ts';
import type { Namespace } from '../../nameserver/metadata-store/index.ts';
import type { PersistedDataserver } from '../../nameserver/registry.ts';
import { tempDir } from '../helpers/proc.ts';

const hb = (id: string, port: number) => ({ id, url: `http://127.0.0.1:${port}`, rack: 'r1', freeBytes: 1, usedBytes: 0, blockSize: 1 });

describe('registry take-over after standing by', () => {
  let db: RootDb;
  let cleanup: () => void;
  let puts: string[];
  let registry: Registry;

  beforeEach(async () => {
    const t = tempDir();
    cleanup = t.cleanup;
    db = await openStateDb(t.dir);
    const store = jsonSublevel<PersistedDataserver>(db, 'dataservers');
    puts = [];
    const counted: Namespace<PersistedDataserver> = Object.assign(Object.create(store) as Namespace<PersistedDataserver>, {
      put: (key: string, value: PersistedDataserver) => {
        puts.push(key);
        return store.put(key, value);
      },
    });
    registry = new Registry(counted, 60_000, Date.now());
  });

  afterEach(async () => {
    await db.close();
    cleanup();
  });

  it("persists only the servers whose identity the leader's records do not hold", async () => {
    const now = Date.now();
    // as a standby: three servers beat here first
    for (const [id, port] of [['ds-1', 1001], ['ds-2', 1002], ['ds-3', 1003]] as const) await registry.beat(hb(id, port), now, false);
    expect(puts).toEqual([]);
    // the leader's records follow: ds-1 as seen here, ds-2 on an older URL, ds-3 not at all
    registry.apply('ds-1', { id: 'ds-1', url: 'http://127.0.0.1:1001', rack: 'r1', draining: false });
    registry.apply('ds-2', { id: 'ds-2', url: 'http://127.0.0.1:999', rack: 'r1', draining: false });
    await registry.takeOver();
    expect(puts.sort()).toEqual(['ds-2', 'ds-3']);
    // the URL seen here is kept and was persisted
    expect(registry.get('ds-2')?.url).toBe('http://127.0.0.1:1002');
  });
});
