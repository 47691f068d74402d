// Typed errors of the metadata stores. Callers branch on `isNotLeader(err)` and
// `isCompacted(err)`, never on messages.
//
// UGCFS_ERR_NOT_LEADER (421): a fenced write whose fence no longer holds (the leader key was
// deleted, expired with its lease, or re-created by another campaign): nothing was written.
// UGCFS_ERR_NO_QUORUM (503): etcd could not be reached or had no quorum for a write.
import { UgcfsError } from '../../src/base/errors.ts';

/** A leader key and the mod revision it had when this writer won it (its epoch). */
export interface Fence {
  /** full etcd key of the leader key */
  key: string;
  /** mod_revision of the leader key when it was won */
  epoch: number;
}

export class NotLeaderError extends UgcfsError {
  constructor(
    readonly fence: Fence,
    /** mod revision of the leader key now (0: it does not exist) */
    readonly currentEpoch: number,
  ) {
    super('UGCFS_ERR_NOT_LEADER', `not the leader: the leader key ${fence.key} is ${currentEpoch === 0 ? 'gone' : `at epoch ${currentEpoch}`}, this writer's epoch is ${fence.epoch}; nothing was written`);
  }
}

export function isNotLeader(err: unknown): err is UgcfsError {
  return err instanceof UgcfsError && err.code === 'UGCFS_ERR_NOT_LEADER';
}

/** etcd unreachable or without quorum, as the name server reports it to its callers. */
export function noQuorum(cause: unknown): UgcfsError {
  return new UgcfsError('UGCFS_ERR_NO_QUORUM', `the metadata store (etcd) cannot take writes: ${(cause as Error).message}`, { cause });
}

/** True for etcd failures that mean "no member answered / no quorum" (not a refusal of the request). */
export function isEtcdDown(err: unknown): boolean {
  const kind = (err as { etcd?: { kind?: string } }).etcd?.kind;
  return kind === 'unavailable' || kind === 'timeout';
}

/** A read or watch asked for a revision etcd has compacted away: re-read a snapshot and watch from it. */
export function isCompacted(err: unknown): err is UgcfsError {
  return err instanceof UgcfsError && (err as { etcd?: { kind?: string } }).etcd?.kind === 'compacted';
}
