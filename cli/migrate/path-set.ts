// A set of legacy paths kept on disk, for "each key once" over sources too big to remember in
// memory (an access log of tens of millions of lines). A throwaway LevelDB in the system's
// temporary directory, removed on close (or by the next run, after a SIGKILL: scratch-dir.ts);
// it is never part of the resumable state, so a dry run writes nothing anywhere else.
import { rmSync } from 'node:fs';
import { Level } from 'level';
import { scratchDir } from './scratch-dir.ts';

export class PathSet {
  private constructor(
    private readonly dir: string,
    private readonly db: Level<string, string>,
  ) {}

  static async open(): Promise<PathSet> {
    const dir = scratchDir('seen');
    const db = new Level<string, string>(dir);
    try {
      await db.open();
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    return new PathSet(dir, db);
  }

  /** Adds the path; false if it was already there. Callers add one at a time. */
  async add(path: string): Promise<boolean> {
    if ((await this.db.get(path)) !== undefined) return false;
    await this.db.put(path, '');
    return true;
  }

  async close(): Promise<void> {
    await this.db.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
