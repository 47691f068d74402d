// The LevelDB metadata store: the conformance suite, and the on-disk layout of today's state
// directories (state-db.ts sublevels, `!name!key`, JSON text values) read and written both ways.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, describe, expect, it } from 'vitest';
import { metadataStoreSuite } from '../../nameserver/metadata-store/conformance.ts';
import { LevelMetadataStore } from '../../nameserver/metadata-store/leveldb.ts';
import { jsonSublevel, openStateDb, SYNC } from '../../nameserver/state-db.ts';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'ugcfs-meta-level-'));
}

metadataStoreSuite('leveldb', async () => {
  const dir = await tempDir();
  return {
    open: () => LevelMetadataStore.open(dir),
    destroy: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('leveldb metadata store: today\'s state directories', () => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
  });

  it('reads what state-db.ts sublevels wrote, and writes what they read', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const old = await openStateDb(dir);
    const rec = { id: 7, replication: 2, state: 'sealed', replicas: ['ds-a', 'ds-b'], createdAt: 1_700_000_000_000 };
    await jsonSublevel<typeof rec>(old, 'blocks').put('7', rec, SYNC);
    await jsonSublevel<string>(old, 'meta').put('fileKey', '5000', SYNC);
    await jsonSublevel<{ fid: string; updatedAt: number }>(old, 'legacy').put('/img/a!b/c.jpg', { fid: 'F', updatedAt: 1 }, SYNC);
    await old.close();

    const store = await LevelMetadataStore.open(dir);
    expect(await store.namespace('blocks').get('7')).toEqual(rec);
    expect(await store.namespace('meta').get('fileKey')).toBe('5000');
    expect(await store.namespace('legacy').iterator().all()).toEqual([['/img/a!b/c.jpg', { fid: 'F', updatedAt: 1 }]]);
    await store.namespace('blocks').put('8', { ...rec, id: 8 });
    await store.batch([{ type: 'put', namespace: store.namespace('dataservers'), key: 'ds-a', value: { id: 'ds-a', url: 'http://x' } }]);
    await store.close();

    const again = await openStateDb(dir);
    const blocks: Array<[string, unknown]> = [];
    for await (const e of jsonSublevel(again, 'blocks').iterator()) blocks.push(e);
    expect(blocks).toEqual([['7', rec], ['8', { ...rec, id: 8 }]]);
    expect(await jsonSublevel(again, 'dataservers').get('ds-a')).toEqual({ id: 'ds-a', url: 'http://x' });
    await again.close();

    // the raw layout: `!<namespace>!<key>` -> JSON text
    const raw = new Level<string, string>(dir);
    await raw.open();
    expect(await raw.get('!blocks!8')).toBe(JSON.stringify({ ...rec, id: 8 }));
    expect(await raw.get('!meta!fileKey')).toBe('"5000"');
    expect(await raw.get('!legacy!/img/a!b/c.jpg')).toBe('{"fid":"F","updatedAt":1}');
    await raw.close();
  });

  it('wraps a database opened elsewhere and leaves it open', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const db = await openStateDb(dir);
    const store = LevelMetadataStore.wrap(db);
    await store.namespace<number>('meta').put('x', 1);
    await store.close();
    expect(await jsonSublevel(db, 'meta').get('x')).toBe(1);
    await db.close();
  });
});
