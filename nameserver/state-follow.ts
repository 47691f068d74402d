// A standby's warm state: every change the leader makes in etcd is applied to this name
// server's memory as it happens (a watch from the revision the state was loaded at), so a
// promotion needs no reload. Each in-memory holder registers an applier for its namespace;
// appliers set what a key now holds, so a change seen twice (loaded, then watched) is
// harmless. While this name server leads it skips the appliers: its memory is the source
// of the writes, and an echo arriving after a newer local change would step it back.
//
// A watch that etcd cannot serve (its start revision was compacted away) ends the process:
// a restart reloads the state, which is what a follower would have to do anyway.
import type { Logger } from '../src/base/log.ts';
import type { EtcdMetadataStore, MetadataWatch } from './metadata-store/index.ts';

/** Sets what `key` of one namespace now holds (`undefined`: deleted). */
export type Applier = (key: string, value: unknown) => void;

export class StateFollower {
  private readonly appliers = new Map<string, Applier>();
  private applied = 0;
  private watch: MetadataWatch | undefined;
  private readonly waiters: Array<{ revision: number; resolve: () => void }> = [];

  constructor(
    private readonly store: EtcdMetadataStore,
    /** false while this name server leads */
    private readonly shouldApply: () => boolean,
    private readonly log: Logger,
    private readonly onLost: (why: string) => void,
  ) {}

  /** Registers the applier of a namespace (before start). */
  on(namespace: string, fn: Applier): void {
    this.appliers.set(namespace, fn);
  }

  /** The revision whose changes have all been seen. */
  get revision(): number {
    return this.applied;
  }

  /** Follows every change after `loadedAt` (the revision read before the state was loaded). */
  start(loadedAt: number): void {
    this.applied = loadedAt;
    const watch = this.store.watch('', loadedAt, (events) => {
      const apply = this.shouldApply();
      for (const e of events) {
        if (apply && e.namespace !== undefined) {
          try {
            this.appliers.get(e.namespace)?.(e.key, e.type === 'put' ? e.value : undefined);
          } catch (err) {
            this.log.error({ err, namespace: e.namespace, key: e.key }, 'could not apply a change of the shared state');
          }
        }
        if (e.revision > this.applied) this.applied = e.revision;
      }
      this.wake();
    });
    this.watch = watch;
    void watch.done.then((end) => {
      if (end.reason !== 'closed') this.onLost(end.reason === 'compacted' ? `etcd compacted revision ${end.compactRevision} before this name server read it` : end.message);
    });
  }

  /** Resolves once every change up to `revision` has been seen. */
  caughtUp(revision: number): Promise<void> {
    if (this.applied >= revision) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ revision, resolve }));
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (this.applied >= w.revision) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  async close(): Promise<void> {
    await this.watch?.close();
  }
}
