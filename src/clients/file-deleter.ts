// The cluster client's delete protocol: tombstone the file on every replica, chase copies
// made while the deletes were on the wire (repair, moves), and report the delete to the name
// server — its delete feed tells origins to purge, and it replays the delete to replicas
// that missed it.
import { UgcfsError } from '../base/errors.ts';
import { decodeFid } from '../wire/file-id.ts';
import type { DsRef } from '../wire/protocol.ts';
import { sleep } from './cluster-types.ts';
import type { DataserverClient } from './dataserver-client.ts';
import type { LocationCache } from './location-cache.ts';
import type { NameserverClient } from './nameserver-client.ts';

/** Block states in which no copy is being made; any other state (repairing, moving...) is busy. */
const STEADY_STATES = new Set(['writable', 'readonly', 'sealed', 'failed']);
/** Busy states that end with a new replica a racing delete must also reach. */
const COPYING_STATES = new Set(['repairing', 'moving']);

export class FileDeleter {
  constructor(
    private readonly ns: NameserverClient,
    private readonly ds: DataserverClient,
    private readonly locations: LocationCache,
  ) {}

  /**
   * Deletes the file on every replica. Replicas that are down (or that the request did not
   * reach) are reported to the name server, which replays the delete when they return.
   * Throws UGCFS_ERR_NOT_FOUND when no replica had the file.
   */
  async delete(fid: string): Promise<void> {
    const f = decodeFid(fid);
    const loc = await this.locations.locate(f.block, true);
    const deleteOn = (replicas: DsRef[]) => Promise.allSettled(replicas.map((ds) => this.ds.deleteNeedle(ds, fid)));
    const results = await deleteOn(loc.replicas);
    const missed = [...(loc.absent ?? [])];
    let deleted = 0;
    let missing = 0;
    const tally = (rs: PromiseSettledResult<'missing' | 'deleted'>[], replicas: DsRef[]) =>
      rs.forEach((r, i) => {
        if (r.status === 'rejected') missed.push(replicas[i]!.id);
        else if (r.value === 'deleted') deleted++;
        else missing++;
      });
    tally(results, loc.replicas);
    // A copy finished (repair, move) while the deletes were on the wire was made before the
    // tombstone landed and is not in `loc`: look again and delete there too. While a copy is
    // still running, wait (briefly) for it to finish: a report that reaches the name server
    // just as the copy ends can miss the copy's list of racing deletes.
    let busy = !STEADY_STATES.has(loc.state);
    const reached = new Set(loc.replicas.map((r) => r.id));
    try {
      for (let round = 0; ; round++) {
        const fresh = await this.locations.locate(f.block, true);
        const extra = fresh.replicas.filter((r) => !reached.has(r.id));
        for (const r of extra) reached.add(r.id);
        if (extra.length > 0) tally(await deleteOn(extra), extra);
        busy = !STEADY_STATES.has(fresh.state);
        if (!COPYING_STATES.has(fresh.state) || round >= 30) break;
        await sleep(100);
      }
    } catch {
      // The name server is unreachable: the report below fails too when one is needed.
    }
    // Every delete is reported: it goes into the name server's delete feed (origins purge
    // their caches from it), replicas that missed it get it replayed when they are back, and
    // a block being copied (repair, move) gets it replayed to the new copy. Only a delete
    // that needs no replay may survive an unreachable name server.
    try {
      await this.ns.reportDelete(fid, missed);
    } catch (err) {
      if (missed.length > 0 || busy) throw err;
    }
    this.locations.forget(f.block);
    if (deleted === 0 && missing > 0 && missed.length === 0) throw new UgcfsError('UGCFS_ERR_NOT_FOUND', 'no such file');
    if (deleted === 0 && missing === 0) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', `no replica of block ${f.block} could be reached; the delete will be replayed`);
  }
}
