// Typed errors of the metadata stores. Callers branch on `isNotLeader(err)` and
// `isCompacted(err)`, never on messages.
//
// NOT_LEADER: a fenced write whose fence no longer holds (the leader key was deleted, expired
// with its lease, or re-created by another campaign). It should become its own code,
// UGCFS_ERR_NOT_LEADER (503: "this name server is not the group's leader; ask the leader"),
// in src/base/errors.ts; until it is, it is thrown as UGCFS_ERR_CONFLICT with `notLeader: true`,
// and isNotLeader() accepts both, so adding the code changes nothing at call sites.
import { UgcfsError } from '../../src/base/errors.ts';

/** A leader key and the mod revision it had when this writer won it (its epoch). */
export interface Fence {
  /** full etcd key of the leader key */
  key: string;
  /** mod_revision of the leader key when it was won */
  epoch: number;
}

export class NotLeaderError extends UgcfsError {
  readonly notLeader = true;
  constructor(
    readonly fence: Fence,
    /** mod revision of the leader key now (0: it does not exist) */
    readonly currentEpoch: number,
  ) {
    super('UGCFS_ERR_CONFLICT', `not the leader: the leader key ${fence.key} is ${currentEpoch === 0 ? 'gone' : `at epoch ${currentEpoch}`}, this writer's epoch is ${fence.epoch}; nothing was written`);
  }
}

export function isNotLeader(err: unknown): err is UgcfsError {
  return err instanceof UgcfsError && ((err.code as string) === 'UGCFS_ERR_NOT_LEADER' || (err as { notLeader?: unknown }).notLeader === true);
}

/** A read or watch asked for a revision etcd has compacted away: re-read a snapshot and watch from it. */
export function isCompacted(err: unknown): err is UgcfsError {
  return err instanceof UgcfsError && (err as { etcd?: { kind?: string } }).etcd?.kind === 'compacted';
}
