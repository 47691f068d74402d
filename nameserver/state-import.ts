// `--import-state DIR`: moves a single name server's LevelDB state (its --data; the server
// stopped) into etcd, once. Every key of every namespace is copied as it is, then read back
// from etcd and compared; only then is the mark `meta/importedState` written. Run again
// (every start of the group may carry the flag), it finds the mark of the same state and
// checks nothing was lost; an etcd prefix that already holds another state, or a partial
// copy of a different one, is refused rather than merged.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { EtcdMetadataStore } from './metadata-store/index.ts';
import { openStateDb } from './state-db.ts';

/** The mark of a finished import, in the `meta` namespace. */
export const IMPORT_MARK = 'importedState';

interface ImportMark {
  /** the imported state's id (meta/stateId) */
  state: string;
  keys: number;
  at: number;
}

/** Namespace and key of a LevelDB sublevel key `!ns!key`; undefined for keys outside sublevels. */
function splitKey(raw: string): [string, string] | undefined {
  if (raw[0] !== '!') return undefined;
  const end = raw.indexOf('!', 1);
  return end > 1 ? [raw.slice(1, end), raw.slice(end + 1)] : undefined;
}

async function readLevel(dir: string): Promise<Map<string, Map<string, unknown>>> {
  const stateDir = existsSync(join(dir, 'state')) ? join(dir, 'state') : dir;
  if (!existsSync(join(stateDir, 'CURRENT'))) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --import-state: ${dir} holds no name-server state (no LevelDB in ${stateDir})`);
  let db;
  try {
    db = await openStateDb(stateDir);
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --import-state: cannot open ${stateDir} (is its name server still running?): ${(err as Error).message}`);
  }
  const out = new Map<string, Map<string, unknown>>();
  try {
    for await (const [raw, text] of db.iterator()) {
      const k = splitKey(raw);
      if (!k) continue;
      let m = out.get(k[0]);
      if (!m) out.set(k[0], (m = new Map()));
      m.set(k[1], JSON.parse(text));
    }
  } finally {
    await db.close();
  }
  return out;
}

/** Copies (once) and verifies; returns how many keys the state has. */
export async function importState(etcd: EtcdMetadataStore, dir: string, log: Logger): Promise<number> {
  const source = await readLevel(dir);
  const stateId = source.get('meta')?.get('stateId');
  if (typeof stateId !== 'string') throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --import-state: ${dir} has no state id (not a name-server state?)`);
  const total = [...source.values()].reduce((n, m) => n + m.size, 0);
  const meta = etcd.namespace<unknown>('meta');
  const mark = (await meta.get(IMPORT_MARK)) as ImportMark | undefined;
  if (mark && mark.state !== stateId) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --import-state: etcd already holds state ${mark.state}, imported ${new Date(mark.at).toISOString()}; ${dir} is state ${stateId}`);
  const there = await meta.get('stateId');
  if (!mark && there !== undefined && there !== stateId) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --import-state: etcd already holds another state (${String(there)}); refusing to merge ${stateId} into it`);
  if (mark) {
    // The group has run on it since: its records may have changed, so only the mark is checked.
    log.info({ state: stateId, at: new Date(mark.at).toISOString() }, '--import-state: this state was imported before; nothing to do');
    return total;
  }
  log.warn({ from: dir, state: stateId, keys: total }, 'importing a LevelDB name-server state into etcd');
  for (const [name, rows] of source) {
    const ops = [...rows].map(([key, value]) => ({ type: 'put' as const, key, value }));
    if (ops.length > 0) await etcd.namespace<unknown>(name).batch(ops, { atomic: false });
  }
  for (const [name, rows] of source) {
    const got = new Map(await etcd.namespace<unknown>(name).iterator().all());
    for (const [key, value] of rows) {
      if (!got.has(key) || JSON.stringify(got.get(key)) !== JSON.stringify(value)) {
        throw new UgcfsError('UGCFS_ERR_INTERNAL', `--import-state: ${name}/${key} of ${dir} reads back from etcd ${got.has(key) ? 'changed' : 'missing'}; nothing marked imported, run it again`);
      }
    }
  }
  await meta.put(IMPORT_MARK, { state: stateId, keys: total, at: Date.now() } satisfies ImportMark);
  log.warn({ state: stateId, keys: total }, 'imported and verified the LevelDB state; later starts may drop --import-state');
  return total;
}
