// The streaming tree walk on real files: byte order, depth first, one folder at a time (a
// file added to a later folder after the walk has started is still seen, which a walk that
// listed everything up front would miss), and the safety rules: symlinks followed only to a
// regular file inside the tree, special files and non-UTF-8 names reported, NFC/NFD twins
// (files and whole folders) reported rather than merged.
import { afterEach, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/proc.ts';
import { countTree, treeRoot, walkTree, type WalkEntry } from '../../cli/migrate/tree-walk.ts';
import { joinLegacyPath } from '../../src/wire/legacy-path.ts';
import { reasonOf } from '../../cli/migrate/migrate-run.ts';

const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

const opts = { key: (rel: string) => joinLegacyPath('/up', rel), skip: (n: string) => n.startsWith('.state'), reason: reasonOf };
const show = (e: WalkEntry) => (e.kind === 'file' ? `file ${e.rel} -> ${e.path}` : `${e.kind} ${e.rel}: ${e.reason}`);

describe('tree walk', () => {
  it('streams in byte order, depth first, one folder at a time', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const root = join(t.dir, 'tree');
    for (const d of ['a', 'a/b', 'B', 'c']) mkdirSync(join(root, d), { recursive: true });
    for (const f of ['a/b/1.jpg', 'a/2.jpg', 'B/x.jpg', 'z.jpg', 'a/b/0.jpg', '.state-file']) writeFileSync(join(root, f), 'x');
    const it = walkTree(await treeRoot(root), opts);
    const first = await it.next();
    expect(first.value && show(first.value)).toBe('file B/x.jpg -> /up/B/x.jpg');
    // Not listed yet: the walk has only been into B/.
    writeFileSync(join(root, 'c', 'late.jpg'), 'x');
    const rest: string[] = [];
    for await (const e of it) rest.push(show(e));
    expect(rest).toEqual(['file a/2.jpg -> /up/a/2.jpg', 'file a/b/0.jpg -> /up/a/b/0.jpg', 'file a/b/1.jpg -> /up/a/b/1.jpg', 'file c/late.jpg -> /up/c/late.jpg', 'file z.jpg -> /up/z.jpg']);
    expect(await countTree(await treeRoot(root), opts.skip, () => {})).toBe(6);
  });

  it('keeps every safety rule: links, special files, bad names, twins', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const root = join(t.dir, 'tree');
    const outside = join(t.dir, 'outside');
    mkdirSync(join(root, 'in'), { recursive: true });
    mkdirSync(outside);
    writeFileSync(join(outside, 'secret.jpg'), 's');
    writeFileSync(join(root, 'in', 'real.jpg'), 'r');
    symlinkSync('in/real.jpg', join(root, 'alias.jpg'));
    symlinkSync(join(outside, 'secret.jpg'), join(root, 'escape.jpg'));
    symlinkSync(outside, join(root, 'escape-dir'));
    symlinkSync('in', join(root, 'loop'));
    symlinkSync('nowhere.jpg', join(root, 'broken.jpg'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
    writeFileSync(Buffer.concat([Buffer.from(root + '/latin1-'), Buffer.from([0xe9]), Buffer.from('.jpg')]), 'l');
    writeFileSync(join(root, 'ctl\u0001.jpg'), 'c');
    // Twin files (NFD sorts first and wins) and twin folders whose contents merge.
    writeFileSync(join(root, 'e\u0301.jpg'), 'nfd');
    writeFileSync(join(root, '\u00e9.jpg'), 'nfc');
    mkdirSync(join(root, 'cafe\u0301'));
    mkdirSync(join(root, 'caf\u00e9'));
    writeFileSync(join(root, 'cafe\u0301', 'x.jpg'), '1');
    writeFileSync(join(root, 'caf\u00e9', 'x.jpg'), '2');
    writeFileSync(join(root, 'caf\u00e9', 'y.jpg'), '3');

    const real = await treeRoot(root);
    const got: string[] = [];
    for await (const e of walkTree(real, opts)) got.push(e.kind === 'file' ? `${show(e)} @ ${e.abs.slice(real.length)}` : show(e));
    // Byte order: 'cafe\u0301' (65 CC 81) before 'caf\u00e9' (C3 A9), 'escape' before 'e\u0301'.
    expect(got).toEqual([
      `file alias.jpg -> /up/alias.jpg @ /in/real.jpg`,
      'refused broken.jpg: broken symlink',
      'file cafe\u0301/x.jpg -> /up/caf\u00e9/x.jpg @ /cafe\u0301/x.jpg',
      'error caf\u00e9/x.jpg: has the same legacy path as cafe\u0301/x.jpg',
      'file caf\u00e9/y.jpg -> /up/caf\u00e9/y.jpg @ /caf\u00e9/y.jpg',
      'error ctl\u0001.jpg: bad legacy path: contains a control character (UGCFS_ERR_BAD_PATH)',
      'refused escape-dir: symlink points outside the tree',
      'refused escape.jpg: symlink points outside the tree',
      'file e\u0301.jpg -> /up/\u00e9.jpg @ /e\u0301.jpg',
      'file in/real.jpg -> /up/in/real.jpg @ /in/real.jpg',
      'error latin1-\u00e9.jpg: file name is not valid UTF-8',
      'refused loop: symlink to a directory is not followed',
      'refused pipe: not a regular file (device, socket or pipe)',
      'error \u00e9.jpg: has the same legacy path as e\u0301.jpg',
    ]);
    await expect(treeRoot(join(root, 'in', 'real.jpg'))).rejects.toMatchObject({ code: 'UGCFS_ERR_BAD_USAGE' });
  });
});
