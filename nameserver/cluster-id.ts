// The cluster's identity as the name server keeps it (docs/NAMESERVER.md, "Cluster
// identity"): a cluster id, handed to every data server at its first registration and
// stored there, and the id of this state (a state made after a loss gets a new one, so a
// data server can tell whose lease a high-water mark is). Both live in the `meta`
// sublevel and are written with sync before any reply carries them.
//
// Where the cluster id comes from:
// - a stored one is used as is;
// - `--adopt-blocks` on a state that has allocated no block: it is LEARNT from the data
//   servers — the first one reporting an id decides (a stored id made by an earlier start
//   that never got a member is replaced); if data servers without an id report and none
//   with one has by the end of the start-up grace (a cluster from before identities), the
//   stored one is kept or one made. With no report at all, it keeps waiting: a name server
//   slow to start must not decide before it has heard anyone;
// - otherwise (a new cluster, or an upgrade of a state from before identities) one is made.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../src/base/log.ts';
import type { Namespace } from './metadata-store/index.ts';

const CLUSTER_KEY = 'clusterId';
const STATE_KEY = 'stateId';

export const newClusterId = (): string => `c-${randomBytes(8).toString('hex')}`;
const newStateId = (): string => `s-${randomBytes(8).toString('hex')}`;

export interface ClusterIdOptions {
  /** --adopt-blocks and the state has allocated no block: learn the id from the data servers */
  learn: boolean;
  /** when learning ends without any data server having an id (end of the start-up grace) */
  learnUntil: number;
  log: Logger;
}

export class ClusterIdentity {
  private id: string | undefined;
  private learning: boolean;
  /** the stored id while learning (kept if no data server has one) */
  private provisional: string | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** while learning: a data server without an id has reported */
  private sawUnidentified = false;

  private constructor(
    private readonly meta: Namespace<string>,
    private state: string,
    stored: string | undefined,
    private readonly o: ClusterIdOptions,
  ) {
    this.learning = o.learn;
    if (o.learn) this.provisional = stored;
    else this.id = stored;
  }

  /** Reads the ids (writes nothing: a standby opens it too); takeOver() makes missing ones. */
  static async open(meta: Namespace<string>, o: ClusterIdOptions): Promise<ClusterIdentity> {
    return new ClusterIdentity(meta, (await meta.get(STATE_KEY)) ?? '', await meta.get(CLUSTER_KEY), o);
  }

  /** This state's id ('' until a leader has made it). */
  get stateId(): string {
    return this.state;
  }

  /** On becoming leader: makes (persisted first) the state id and, unless learning, the cluster id. */
  async takeOver(): Promise<void> {
    await this.serial(async () => {
      if (this.state === '') {
        const id = newStateId();
        await this.meta.put(STATE_KEY, id);
        this.state = id;
      }
      if (!this.learning && this.id === undefined) await this.settle(newClusterId(), 'created a cluster id', undefined, 'info');
      else if (this.id !== undefined) this.o.log.info({ cluster: this.id, state: this.state }, 'cluster id');
      else this.o.log.warn({ state: this.state, until: new Date(this.o.learnUntil).toISOString() }, '--adopt-blocks: the cluster id will be taken from the first data server reporting one');
    });
  }

  /** A standby follows the leader's change (state-follow.ts); false for keys not its own. */
  apply(key: string, value: unknown): boolean {
    if (typeof value !== 'string') return key === STATE_KEY || key === CLUSTER_KEY;
    if (key === STATE_KEY) this.state = value;
    else if (key === CLUSTER_KEY) {
      this.id = value;
      this.learning = false;
      this.provisional = undefined;
    } else return false;
    return true;
  }

  /** The cluster id; undefined only while learning it. */
  get clusterId(): string | undefined {
    return this.id;
  }

  /** True while an --adopt-blocks start waits for a data server to tell it the cluster id. */
  get isLearning(): boolean {
    return this.learning;
  }

  /** While learning: a data server without an id reported (a cluster from before identities?). */
  noteUnidentified(): void {
    if (this.learning) this.sawUnidentified = true;
  }

  /**
   * Ends learning once the start-up grace is over and data servers without an id have
   * reported (none with one): keeps the stored id, or makes one.
   */
  async tick(now = Date.now()): Promise<void> {
    if (!this.learning || now < this.o.learnUntil || !this.sawUnidentified) return;
    await this.serial(async () => {
      if (!this.learning) return;
      if (this.provisional !== undefined) await this.settle(this.provisional, 'no data server reported a cluster id: keeping the stored one');
      else await this.settle(newClusterId(), 'no data server reported a cluster id (a cluster from before identities): created one');
    });
  }

  /** While learning: takes this data server's id as the cluster's (persisted first). */
  async learn(id: string, from: string): Promise<void> {
    await this.serial(async () => {
      if (!this.learning) return;
      await this.settle(id, 'took the cluster id from a data server (--adopt-blocks)', from);
    });
  }

  private async settle(id: string, why: string, from?: string, level: 'info' | 'warn' = 'warn'): Promise<void> {
    await this.meta.put(CLUSTER_KEY, id);
    this.id = id;
    this.learning = false;
    this.provisional = undefined;
    this.o.log[level]({ cluster: id, state: this.state, ...(from ? { ds: from } : {}) }, why);
  }

  private serial(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}
