// A reader that keeps reading every live file through its own cluster client while an
// operation runs, and records every error and every byte mismatch. Files are removed from
// its set before a test deletes them.
import { ClusterClient } from '../../src/clients/cluster-client.ts';
import { isUgcfsError } from '../../src/base/errors.ts';
import type { Cluster } from '../helpers/cluster.ts';

export interface BackgroundReader {
  readonly reads: number;
  readonly errors: string[];
  forget(fid: string): void;
  stop(): Promise<void>;
}

export function startReader(c: Cluster, files: Map<string, Buffer>, opts: { locationTtlMs?: number } = {}): BackgroundReader {
  const client = new ClusterClient({ nameserver: c.client.nameserver, secret: c.secret, timeoutMs: 5000, locationTtlMs: opts.locationTtlMs ?? 2000 });
  const live = new Map(files);
  const errors: string[] = [];
  let reads = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const [fid, data] of [...live]) {
        if (stopped) break;
        try {
          const r = await client.read(fid);
          reads++;
          if (!r.data.equals(data)) errors.push(`${fid}: bytes differ`);
        } catch (err) {
          // A file the test deleted while this read was in flight is not an error.
          if (!live.has(fid) && isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) continue;
          errors.push(`${fid}: ${(err as Error).message}`);
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    get reads() {
      return reads;
    },
    errors,
    forget: (fid) => void live.delete(fid),
    async stop() {
      stopped = true;
      await loop;
      await client.close();
    },
  };
}
