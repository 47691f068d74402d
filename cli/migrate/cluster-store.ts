// Binds the migration pipeline to the real cluster (ClusterClient) and to the origin's own
// check of an old server's file, so a migrated image is stored exactly as if a seller had
// uploaded it (type sniffed from the bytes, bomb guard, metadata stripped) and every other
// file byte for byte, labelled with its type from the bytes or, failing that, its name.
import { splitUrls } from '../../src/base/config.ts';
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { isUgcfsError, UgcfsError } from '../../src/base/errors.ts';
import type { PipelineLimits } from '../../origin/image-pipeline.ts';
import { checkLegacyFile } from '../../origin/file-check.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import type { MigrateStore, Prepared } from './migrate-run.ts';

/** Owner recorded on migrated files: only the admin token may delete them. */
export const MIGRATE_OWNER = 'migrate';

export async function openMigrateStore(config: { nameserver: string; clusterSecret: string; timeoutMs: number }): Promise<MigrateStore & { close(): Promise<void> }> {
  const client = new ClusterClient({ nameserver: splitUrls(config.nameserver), secret: config.clusterSecret, timeoutMs: config.timeoutMs });
  // One cheap call up front, so an unreachable name server or a wrong secret is one clear
  // line and exit 1, not the same failure repeated for every file.
  try {
    await client.legacyLookup('/.ugcfs-migrate-probe');
  } catch (err) {
    const why = (err as Error).message;
    throw new UgcfsError(isUgcfsError(err) ? err.code : 'UGCFS_ERR_UPSTREAM', `cannot use the legacy table at ${config.nameserver}: ${why}`);
  }
  return {
    write: async (data, mime, onAssigned) => (await client.write(data, { mime, owner: MIGRATE_OWNER, onAssigned })).fid,
    read: async (fid) => (await client.read(fid)).data,
    async complete(fid) {
      try {
        const st = await client.stat(fid);
        const loc = await client.locate(decodeFid(fid).block);
        return st.replicas.length >= loc.replicas.length;
      } catch (err) {
        if (isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) return false;
        throw err;
      }
    },
    remove: (fid) => client.delete(fid),
    legacyGet: (path) => client.legacyLookup(path),
    legacySet: (m) => client.legacySet(m.path, m.fid, { ...(m.sha256 ? { sha256: m.sha256 } : {}), ...(m.size !== undefined ? { size: m.size } : {}) }),
    close: () => client.close(),
  };
}

/** The origin's check of an old server's file as migrate's `prepare`: every type is copied, an empty file skipped, a damaged image fails. */
export function uploadPreparer(limits: PipelineLimits): (data: Buffer, path: string) => Promise<Prepared> {
  return async (data, path) => {
    try {
      const checked = await checkLegacyFile(data, path, limits, (job) => job());
      return { data: checked.data, mime: checked.mime };
    } catch (err) {
      if (isUgcfsError(err, 'UGCFS_ERR_EMPTY_BODY')) return { skip: 'empty file (the cluster stores no empty files)' };
      throw err;
    }
  };
}
