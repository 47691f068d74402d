// The cluster client's reads. The block's replicas come from the location cache, tried in
// hashring order; on an error or a checksum mismatch the next replica is tried. Each read
// checks the bytes against the CRC the data server sends (end to end), so the data server
// leaves that pass to us.
import { crc32c } from '@node-rs/crc32';
import { UgcfsError } from '../base/errors.ts';
import { decodeFid } from '../wire/file-id.ts';
import type { DsRef } from '../wire/protocol.ts';
import { asUgcfs, sleep, type FileHead, type FileStat, type ReadFile } from './cluster-types.ts';
import type { DataserverClient } from './dataserver-client.ts';
import type { LocationCache } from './location-cache.ts';

export class FileReader {
  constructor(
    private readonly ds: DataserverClient,
    private readonly locations: LocationCache,
  ) {}

  /** The file's bytes and metadata; a wrong cookie or missing file is UGCFS_ERR_NOT_FOUND. */
  read(fid: string): Promise<ReadFile> {
    return this.withReplica(fid, async (ds) => {
      // The data server leaves the pass over the data to us (we check it anyway, end to end).
      const first = await this.readChecked(ds, fid, true);
      if (first) return first;
      // A mismatch: ask again with the server checking every byte. A damaged record then
      // fails there (counted, logged, UGCFS_ERR_CHECKSUM, and we go on to the next replica);
      // bytes damaged on the way come back whole.
      const again = await this.readChecked(ds, fid, false);
      if (again) return again;
      throw new UgcfsError('UGCFS_ERR_CHECKSUM', `replica ${ds.id} sent bytes whose CRC32-C does not match twice`);
    });
  }

  /** Metadata without the bytes. */
  head(fid: string): Promise<FileHead> {
    return this.withReplica(fid, (ds) => this.ds.headNeedle(ds, fid));
  }

  /** Where the file lives: asks every live replica of its block whether it holds the file. */
  async stat(fid: string): Promise<FileStat> {
    const f = decodeFid(fid);
    const loc = await this.locations.locate(f.block, true);
    const answers = await Promise.allSettled(loc.replicas.map(async (ds) => ({ ds, head: await this.ds.headNeedle(ds, fid) })));
    const ok = answers.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []));
    if (ok.length === 0) {
      const errs = answers.map((a) => asUgcfs((a as PromiseRejectedResult).reason));
      // A whole copy's "no such file" is final; replicas merely lacking the block are not.
      const other = errs.filter((e) => e.code !== 'UGCFS_ERR_BLOCK_NOT_FOUND');
      if (other.length === 0 || other.some((e) => e.code === 'UGCFS_ERR_NOT_FOUND')) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
      throw other[0]!;
    }
    return { fid, block: f.block, size: ok[0]!.head.size, mime: ok[0]!.head.mime, replicas: ok.map((o) => o.ds.id) };
  }

  /** One GET of a needle; undefined when its bytes do not match the CRC it came with. */
  private async readChecked(ds: DsRef, fid: string, clientVerifies: boolean): Promise<ReadFile | undefined> {
    const r = await this.ds.getNeedle(ds, fid, { clientVerifies });
    const actual = crc32c(r.data);
    if (r.crcSent && actual !== r.head.crc) return undefined;
    return { data: r.data, mime: r.head.mime, owner: r.head.owner, uploadTime: r.head.uploadTime, crc: actual };
  }

  /**
   * Runs `fn` against the block's replicas in hashring order until one answers. A definitive
   * "no such file" (from a replica holding the whole block) ends the search; a replica without
   * the block or with only part of it (a copy still being pulled), or no replicas at all,
   * refreshes the location once (and, right after a name-server restart, waits briefly for
   * block reports).
   */
  private async withReplica<T>(fid: string, fn: (ds: DsRef) => Promise<T>): Promise<T> {
    const f = decodeFid(fid);
    let last: UgcfsError | undefined;
    for (let round = 0; round < 4; round++) {
      if (round > 1) await sleep(150 * round);
      // Reads may go on with a sealed block's cached location while no name server answers.
      await this.locations.locate(f.block, round > 0, true);
      const order = this.locations.order(f.block, fid);
      let stale = order.length === 0;
      for (const ds of order) {
        try {
          return await fn(ds);
        } catch (err) {
          const e = asUgcfs(err);
          if (e.code === 'UGCFS_ERR_NOT_FOUND' || e.code === 'UGCFS_ERR_BAD_FID') throw e;
          this.locations.replicaFailed(f.block); // a sealed block's location is kept long: ask again next time
          if (e.code === 'UGCFS_ERR_BLOCK_NOT_FOUND' || e.code === 'UGCFS_ERR_UPSTREAM') stale = true;
          last = e;
        }
      }
      if (!stale) break;
    }
    throw last ?? new UgcfsError('UGCFS_ERR_UNAVAILABLE', `no live replica of block ${f.block}`);
  }
}
