// Throwaway directories a migrate run keeps in the system's temporary directory (the seen-set
// of a URL list, the report's lists). They are removed on close, but a SIGKILLed run cannot
// close them, so each name carries its process id, and every run starts (cli/commands/
// migrate.ts) by removing those of processes no longer running. A recycled pid only keeps an
// orphan a little longer; a live run's dirs are never touched.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NAME = /^ugcfs-migrate-[a-z]+-(\d+)-/;

/** Makes `<tmp>/ugcfs-migrate-<kind>-<pid>-XXXXXX`. */
export function scratchDir(kind: 'seen' | 'report'): string {
  return mkdtempSync(join(tmpdir(), `ugcfs-migrate-${kind}-${process.pid}-`));
}

/** Removes the scratch dirs of migrate runs that are no longer running. */
export function removeScratchOrphans(root = tmpdir()): void {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = Number(NAME.exec(name)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || alive(pid)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
