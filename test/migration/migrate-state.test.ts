// The migrate journal on disk: what a kill can leave behind (a torn last line) must not lose
// the entries before it, and reopening compacts without dropping anything live.
import { afterEach, describe, expect, it } from 'vitest';
import { appendFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/proc.ts';
import { MigrateState, stateFileName, STATE_FILE_PREFIX } from '../../cli/migrate/migrate-state.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

describe('migrate state journal', () => {
  it('survives a torn last line, forgets stored entries once mapped, and compacts on open', () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const file = stateFileName(t.dir, ['dir', '/srv/uploads', '/uploads', 'http://ns']);
    expect(file.startsWith(join(t.dir, STATE_FILE_PREFIX))).toBe(true);
    expect(stateFileName(t.dir, ['dir', '/srv/other', '/uploads', 'http://ns'])).not.toBe(file);

    const s = MigrateState.open(file);
    s.recordStored('/a.jpg', 'F1', 'sha-a');
    s.recordDone({ p: '/a.jpg', fid: 'F1', sha: 'sha-a', size: 1 });
    s.recordStored('/b.jpg', 'F2', 'sha-b');
    s.recordDone({ p: '/c.jpg', fid: 'F3', sha: 'sha-c', size: 3, etag: '"e"' });
    s.recordDone({ p: '/c.jpg', fid: 'F4', sha: 'sha-c2', size: 4 });
    s.close();
    // What a SIGKILL in the middle of an append could leave.
    appendFileSync(file, '{"t":"done","p":"/d.jpg","fi');

    const again = MigrateState.open(file);
    cleanups.push(() => again.close());
    expect(again.get('/a.jpg')?.fid).toBe('F1');
    expect(again.storedFid('/b.jpg', 'sha-b')).toBe('F2');
    expect(again.storedFid('/b.jpg', 'other')).toBeUndefined();
    expect(again.get('/c.jpg')).toMatchObject({ fid: 'F4', sha: 'sha-c2' });
    expect(again.get('/d.jpg')).toBeUndefined();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: string; p: string });
    // One done per path, the unmapped store kept, the torn line and superseded entries gone.
    expect(lines.map((l) => `${l.t} ${l.p}`).sort()).toEqual(['done /a.jpg', 'done /c.jpg', 'stored /b.jpg']);
    expect(readdirSync(t.dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('writes nothing for a dry run', () => {
    const s = MigrateState.none();
    s.recordStored('/a.jpg', 'F1', 'x');
    expect(s.storedFid('/a.jpg', 'x')).toBe('F1');
    s.close();
  });
});
