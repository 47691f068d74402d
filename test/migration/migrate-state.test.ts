// The migrate state on disk (format 2: a JSON-lines journal of write intents + LevelDB of done
// entries): what a kill can leave behind (a torn last line) must not lose the entries before
// it, a format-1 file from an older ugcfs is converted without losing anything, and the
// journal stays as small as the writes in flight however many files go through it.
import { afterEach, describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/proc.ts';
import { MigrateState, stateDbName, stateFileName, STATE_FILE_PREFIX, STATE_VERSION } from '../../cli/migrate/migrate-state.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function stateFile(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return stateFileName(t.dir, ['dir', '/srv/uploads', '/uploads', 'http://ns']);
}

const journalLines = (file: string) => readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: string; p?: string });

describe('migrate state', () => {
  it('survives a torn last line, forgets intents once done, and keeps done entries across reopen', async () => {
    const file = stateFile();
    expect(file.startsWith(join(file, '..', STATE_FILE_PREFIX))).toBe(true);
    expect(stateFileName('/x', ['dir', '/srv/other', '/uploads', 'http://ns'])).not.toBe(stateFileName('/x', ['dir', '/srv/uploads', '/uploads', 'http://ns']));

    const s = await MigrateState.open(file);
    s.recordStored('/a.jpg', 'F1', 'sha-a');
    await s.recordDone({ p: '/a.jpg', fid: 'F1', sha: 'sha-a', size: 1 });
    s.recordStored('/b.jpg', 'F2', 'sha-b');
    await s.recordDone({ p: '/c.jpg', fid: 'F3', sha: 'sha-c', size: 3, etag: '"e"' });
    await s.recordDone({ p: '/c.jpg', fid: 'F4', sha: 'sha-c2', size: 4 });
    expect(s.liveIntents).toBe(1);
    await s.close();
    // What a SIGKILL in the middle of an append could leave.
    appendFileSync(file, '{"t":"stored","p":"/d.jpg","fi');

    const again = await MigrateState.open(file);
    cleanups.push(() => again.close());
    expect((await again.get('/a.jpg'))?.fid).toBe('F1');
    expect(again.storedFid('/a.jpg', 'sha-a', await again.get('/a.jpg'))).toBe('F1');
    expect(again.storedFid('/b.jpg', 'sha-b', undefined)).toBe('F2');
    expect(again.storedFid('/b.jpg', 'other', undefined)).toBeUndefined();
    expect(await again.get('/c.jpg')).toMatchObject({ fid: 'F4', sha: 'sha-c2' });
    expect(await again.get('/d.jpg')).toBeUndefined();
    // The journal holds its version and the one intent not yet done; the torn line is gone.
    expect(journalLines(file).map((l) => `${l.t} ${l.p ?? ''}`)).toEqual(['version ', 'stored /b.jpg']);
    expect(readdirSync(join(file, '..')).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('converts a format-1 JSON-lines file on first open and loses nothing', async () => {
    const file = stateFile();
    // As the old journal wrote it: stored before done, a superseded done, an unfinished
    // store, the old origin's validators, and a torn last line.
    const v1 = [
      { t: 'stored', p: '/a.jpg', fid: 'F1', sha: 'sha-a' },
      { t: 'done', p: '/a.jpg', fid: 'F1', sha: 'sha-a', size: 1 },
      { t: 'done', p: '/c.jpg', fid: 'F3', sha: 'sha-c', size: 3 },
      { t: 'stored', p: '/b.jpg', fid: 'F2', sha: 'sha-b' },
      { t: 'done', p: '/c.jpg', fid: 'F4', sha: 'sha-c2', size: 4, etag: '"e"', lm: 'Tue, 01 Jan 2019 00:00:00 GMT' },
    ];
    const many = Array.from({ length: 5000 }, (_, i) => ({ t: 'done', p: `/many/${i}.jpg`, fid: `M${i}`, sha: `s${i}`, size: i }));
    writeFileSync(file, [...v1, ...many].map((e) => JSON.stringify(e)).join('\n') + '\n{"t":"done","p":"/torn.jpg","fid":"X');
    expect(existsSync(stateDbName(file))).toBe(false);

    for (const pass of ['converting', 'converted']) {
      const s = await MigrateState.open(file);
      expect((await s.get('/a.jpg'))?.fid, pass).toBe('F1');
      expect(await s.get('/c.jpg'), pass).toEqual({ t: 'done', p: '/c.jpg', fid: 'F4', sha: 'sha-c2', size: 4, etag: '"e"', lm: 'Tue, 01 Jan 2019 00:00:00 GMT' });
      expect(s.storedFid('/b.jpg', 'sha-b', undefined), pass).toBe('F2');
      expect(s.liveIntents, pass).toBe(1);
      expect((await s.get('/many/4999.jpg'))?.fid, pass).toBe('M4999');
      expect(await s.get('/torn.jpg'), pass).toBeUndefined();
      await s.close();
      expect(existsSync(stateDbName(file))).toBe(true);
      // The done lines now live in LevelDB only; the journal keeps the unfinished store.
      expect(journalLines(file).map((l) => `${l.t} ${l.p ?? ''}`), pass).toEqual(['version ', 'stored /b.jpg']);
    }
  });

  it('keeps the journal to the writes in flight over many files', async () => {
    const file = stateFile();
    const s = await MigrateState.open(file);
    cleanups.push(() => s.close());
    for (let i = 0; i < 10_000; i++) {
      s.recordStored(`/f/${i}.jpg`, `F${i}`, `s${i}`);
      await s.recordDone({ p: `/f/${i}.jpg`, fid: `F${i}`, sha: `s${i}`, size: i });
    }
    s.recordStored('/f/last.jpg', 'FL', 'sl');
    expect(s.liveIntents).toBe(1);
    // Rewritten down to its live intents every few thousand appends.
    expect(journalLines(file).length).toBeLessThan(5000);
    expect(journalLines(file)).toContainEqual({ t: 'stored', p: '/f/last.jpg', fid: 'FL', sha: 'sl' });
    expect((await s.get('/f/9999.jpg'))?.fid).toBe('F9999');
  });

  it('refuses a state of a newer format and a state another run holds open', async () => {
    const file = stateFile();
    const s = await MigrateState.open(file);
    await expect(MigrateState.open(file)).rejects.toMatchObject({ code: 'UGCFS_ERR_CONFLICT' });
    await s.close();
    writeFileSync(file, JSON.stringify({ t: 'version', v: STATE_VERSION + 1 }) + '\n');
    await expect(MigrateState.open(file)).rejects.toMatchObject({ code: 'UGCFS_ERR_BAD_USAGE' });
    // Refused without touching the file.
    expect(journalLines(file)).toEqual([{ t: 'version', v: STATE_VERSION + 1 }]);
  });

  it('writes nothing for a dry run', async () => {
    const s = MigrateState.none();
    s.recordStored('/a.jpg', 'F1', 'x');
    expect(s.storedFid('/a.jpg', 'x', undefined)).toBe('F1');
    await s.recordDone({ p: '/a.jpg', fid: 'F1', sha: 'x', size: 1 });
    expect(await s.get('/a.jpg')).toBeUndefined();
    await s.close();
  });
});
