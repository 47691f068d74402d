// What the block-store modules share: the index, the knobs, metrics, and the test-only
// crash hook. Passed explicitly so several data servers can live in one process.
import type { NeedleIndex } from './needle-index.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { Logger } from '../src/base/log.ts';
import type { SyncReadGate } from './sync-read-gate.ts';
import type { AlignedStages } from './aligned-stage.ts';
import type { ClusterClock } from './cluster-clock.ts';
import type { Quarantine } from './quarantine.ts';

export interface StoreContext {
  /** directory holding the block files */
  blocksDir: string;
  index: NeedleIndex;
  metrics: Metrics | undefined;
  log: Logger | undefined;
  /** fdatasync block files before acknowledging (group commit) */
  fsync: boolean;
  /** staging buffers for O_DIRECT appends (block-write-direct.ts); undefined: appends are buffered */
  directStages: AlignedStages | undefined;
  /** a block is sealed when the next record would not fit */
  blockSize: number;
  /** compaction drops tombstones older than this (ms); 0 keeps them for ever */
  tombstoneKeepMs: number;
  /** where data not proven garbage goes instead of being unlinked or cut (quarantine.ts) */
  quarantine: Quarantine;
  /** delete times and tombstone expiry (cluster-clock.ts), never this machine's clock alone */
  clock: ClusterClock;
  /** reads in place on the event loop (sync-read-gate.ts); undefined: every read goes to the thread pool */
  syncReads: SyncReadGate | undefined;
  /** test-only: SIGKILLs the process at a named step (UGCFS_TEST_CRASH_AT) */
  crashPoint(step: string): void;
}

/** Builds the crash hook; an empty name disables it. */
export function crashHook(name: string): (step: string) => void {
  if (!name) return () => {};
  return (step) => {
    if (step === name) process.kill(process.pid, 'SIGKILL');
  };
}
