// Who leads the name-server group (docs/NAMESERVER.md, "High availability"). One name
// server on the embedded LevelDB always leads (SoloLeadership, epoch 0). Name servers on
// etcd campaign for one election key bound to a lease (EtcdLeadership); the winner's epoch
// is the key's revision, and every state change it makes is an etcd transaction conditional
// on that revision (metadata-store/etcd.ts `fenced`), so a deposed leader writes nothing.
//
// A winner acts only after its follower has applied every change up to its election
// revision, and then runs the take-over hooks (finish what a dead leader left half done).
// It stops acting the moment its lease may have lapsed: isLeader() compares the clock with
// the lease's certain end on every call, so a process woken from SIGSTOP past its lease
// does nothing before its timers have even run.
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { LeaderStatus, NameserverStatus } from '../src/wire/protocol.ts';
import { isEtcdDown, noQuorum, type EtcdMetadataStore, type Fence, type LeaderInfo, type Lease, type LeaseKeeper, type MetadataWatch } from './metadata-store/index.ts';

/** The election every name server of a cluster campaigns in (`<prefix>/_election/nameserver`). */
export const ELECTION = 'nameserver';

export type PromoteHook = () => Promise<void> | void;
export type DemoteHook = (why: string) => void;

/** What metrics count. */
export interface LeadershipEvents {
  elected?(epoch: number): void;
  deposed?(why: string): void;
  renewed?(ok: boolean): void;
}

export interface Leadership {
  readonly kind: 'solo' | 'etcd';
  /** this name server's advertised URL (set before start) */
  self: string;
  /** leading now, with a lease that cannot have lapsed */
  isLeader(): boolean;
  /** the epoch stamped on data-server commands: this leader's (0 for a single name server) */
  epoch(): number;
  /** throws 421 UGCFS_ERR_NOT_LEADER (with the leader's URL) or 503 UGCFS_ERR_NO_QUORUM unless leading */
  requireLeader(): void;
  status(): LeaderStatus;
  /** every name server of the group that is up (announced in etcd), with its role; a single name server: itself */
  members(): Promise<NameserverStatus[]>;
  /** runs once this name server leads, before it acts (take-over work: it may write) */
  onPromote(fn: PromoteHook): void;
  /** runs when it stops leading (stop timers and work that acts as leader) */
  onDemote(fn: DemoteHook): void;
  start(): Promise<void>;
  close(): Promise<void>;
}

abstract class Hooks {
  protected readonly promoteHooks: PromoteHook[] = [];
  protected readonly demoteHooks: DemoteHook[] = [];

  onPromote(fn: PromoteHook): void {
    this.promoteHooks.push(fn);
  }

  onDemote(fn: DemoteHook): void {
    this.demoteHooks.push(fn);
  }
}

/** A single name server on LevelDB: leader from start to close, epoch 0. */
export class SoloLeadership extends Hooks implements Leadership {
  readonly kind = 'solo' as const;
  private started = false;

  constructor(public self: string) {
    super();
  }

  isLeader(): boolean {
    return this.started;
  }

  epoch(): number {
    return 0;
  }

  requireLeader(): void {
    if (!this.started) throw new UgcfsError('UGCFS_ERR_UNAVAILABLE', 'the name server is starting');
  }

  status(): LeaderStatus {
    return { leader: this.self, epoch: 0, self: this.self, role: 'leader' };
  }

  async members(): Promise<NameserverStatus[]> {
    return [{ url: this.self, role: 'leader', epoch: 0, alive: true }];
  }

  async start(): Promise<void> {
    for (const h of this.promoteHooks) await h();
    this.started = true;
  }

  async close(): Promise<void> {
    this.started = false;
  }
}

export interface EtcdLeadershipOptions {
  store: EtcdMetadataStore;
  self: string;
  /** --lease-ms: the leader's lease; a dead leader is replaced about this long after it died */
  leaseMs: number;
  log: Logger;
  /** resolves once the state follower has applied every change up to `revision` */
  caughtUp(revision: number): Promise<void>;
  events?: LeadershipEvents;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A member of a group of name servers sharing their state in etcd. */
export class EtcdLeadership extends Hooks implements Leadership {
  readonly kind = 'etcd' as const;
  self: string;
  private readonly ttlSeconds: number;
  /** the lease is trusted until this long before its certain end (clock-rate slack) */
  private readonly marginMs: number;
  private fence: Fence | undefined;
  private keeper: LeaseKeeper | undefined;
  private leaseId: string | undefined;
  /** true once the promote hooks have run for the current fence */
  private acting = false;
  private leader: LeaderInfo | undefined;
  /** the last call to etcd failed for want of a member or quorum */
  private etcdDown = false;
  private campaigning: Promise<void> | undefined;
  private observer: MetadataWatch | undefined;
  private timer: NodeJS.Timeout | undefined;
  private presence: LeaseKeeper | undefined;
  private presenceLease: Lease | undefined;
  private closed = false;

  constructor(private readonly o: EtcdLeadershipOptions) {
    super();
    this.self = o.self;
    this.ttlSeconds = Math.max(1, Math.ceil(o.leaseMs / 1000));
    this.marginMs = Math.min(500, Math.floor(o.leaseMs / 10));
  }

  isLeader(): boolean {
    return this.acting && this.keeper !== undefined && Date.now() < this.keeper.validUntil() - this.marginMs;
  }

  epoch(): number {
    return this.fence?.epoch ?? this.leader?.epoch ?? 0;
  }

  /**
   * The fence every state change is made under (metadata-store/etcd.ts `fenced`); throws
   * like requireLeader when not leading. Take-over hooks write before `acting` is set: they
   * run under the fence of this very term.
   */
  writeFence(): Fence {
    if (this.fence && this.keeper !== undefined && Date.now() < this.keeper.validUntil() - this.marginMs) return this.fence;
    throw this.notLeader();
  }

  requireLeader(): void {
    if (!this.isLeader()) throw this.notLeader();
  }

  private notLeader(): UgcfsError {
    if (this.etcdDown) return noQuorum(new Error('no etcd member answers'));
    const url = this.leaderUrl();
    const leader = url !== undefined && url !== this.self ? url : null;
    return new UgcfsError('UGCFS_ERR_NOT_LEADER', leader ? `this name server is a standby; the leader is ${leader}` : 'no name server leads right now (an election is under way); retry shortly', { details: { leader } });
  }

  private leaderUrl(): string | undefined {
    const v = this.leader?.value as { url?: unknown } | undefined;
    return typeof v?.url === 'string' ? v.url : undefined;
  }

  status(): LeaderStatus {
    const leading = this.isLeader();
    const url = leading ? this.self : this.leaderUrl();
    return { leader: url ?? null, epoch: leading ? this.fence!.epoch : (this.leader?.epoch ?? 0), self: this.self, role: leading ? 'leader' : 'standby' };
  }

  async members(): Promise<NameserverStatus[]> {
    const leader = this.status();
    const urls = new Set<string>([this.self]);
    for (const m of await this.o.store.members(ELECTION)) {
      const url = (m as { url?: unknown } | null)?.url;
      if (typeof url === 'string') urls.add(url);
    }
    if (leader.leader) urls.add(leader.leader);
    return [...urls].sort().map((url) => ({ url, role: url === leader.leader ? 'leader' : 'standby', epoch: leader.epoch, alive: true }));
  }

  /** Keeps this name server listed among the group's members while it runs (a lease of its own). */
  private async announce(): Promise<void> {
    while (!this.closed) {
      try {
        const sentAt = Date.now();
        const lease = await this.o.store.grantLease(this.ttlSeconds);
        await this.o.store.announce(ELECTION, this.self, { url: this.self }, lease);
        this.presenceLease = lease;
        this.presence = this.o.store.keepAlive(lease, { grantSentAt: sentAt });
        await this.presence.lost;
      } catch {
        // etcd unreachable: listed again once it answers
      }
      if (!this.closed) await sleep(Math.max(200, Math.floor(this.o.leaseMs / 2)));
    }
  }

  async start(): Promise<void> {
    void this.announce();
    this.observer = await this.o.store.observeLeader(ELECTION, (info) => {
      this.leader = info;
      this.etcdDown = false;
      if (this.fence && info?.epoch !== this.fence.epoch) this.demote(info ? `another name server leads (epoch ${info.epoch})` : 'the leader key is gone');
      if (!info) this.campaign();
    });
    // A safety net beside the watch: a standby looks every lease period, and campaigns when
    // nobody leads; the read also tells whether etcd answers at all.
    const every = Math.max(200, Math.floor(this.o.leaseMs / 2));
    const check = async () => {
      if (this.closed) return;
      if (!this.fence) {
        try {
          this.leader = await this.o.store.leader(ELECTION);
          this.etcdDown = false;
          if (!this.leader) this.campaign();
        } catch (err) {
          if (isEtcdDown(err) && !this.etcdDown) this.o.log.warn({ err: (err as Error).message }, 'etcd does not answer: writes are refused until it does');
          this.etcdDown = isEtcdDown(err);
        }
      }
      if (!this.closed) this.timer = setTimeout(() => void check(), every);
    };
    this.timer = setTimeout(() => void check(), every);
  }

  private campaign(): void {
    if (this.closed || this.fence || this.campaigning) return;
    this.campaigning = this.runCampaign().finally(() => (this.campaigning = undefined));
  }

  private async runCampaign(): Promise<void> {
    let backoff = 100;
    while (!this.closed && !this.fence) {
      const grantSentAt = Date.now();
      let lease;
      try {
        lease = await this.o.store.grantLease(this.ttlSeconds);
        const r = await this.o.store.campaign(ELECTION, { url: this.self }, lease);
        this.etcdDown = false;
        if (!r.won) {
          this.leader = r.leader;
          await this.o.store.revokeLease(lease).catch(() => undefined);
          return;
        }
        this.fence = r.fence;
        this.leader = r.leader;
        this.leaseId = lease.id;
        const renewed = this.o.events?.renewed;
        this.keeper = this.o.store.keepAlive(lease, { grantSentAt, intervalMs: Math.max(100, Math.floor(this.o.leaseMs / 4)), ...(renewed ? { onRenew: renewed } : {}) });
        const fence = r.fence;
        const keeper = this.keeper;
        void keeper.lost.then((why) => {
          if (this.fence !== fence) return;
          // Refreshes that got no answer for a whole TTL: etcd is unreachable or has no quorum.
          if (keeper.lostHow() === 'unanswered') this.etcdDown = true;
          this.demote(why);
        });
        this.o.log.info({ epoch: fence.epoch }, 'won the name-server election; catching up before acting');
        await this.o.caughtUp(fence.epoch);
        if (this.fence !== fence) return;
        for (const h of this.promoteHooks) await h();
        if (this.fence !== fence) return;
        this.acting = true;
        this.o.events?.elected?.(fence.epoch);
        this.o.log.warn({ epoch: fence.epoch, self: this.self }, 'this name server leads');
        return;
      } catch (err) {
        if (this.fence) this.demote(`taking over failed: ${(err as Error).message}`);
        else if (lease) await this.o.store.revokeLease(lease).catch(() => undefined);
        this.etcdDown = isEtcdDown(err);
        this.o.log.warn({ err: (err as Error).message }, 'campaign for the name-server leadership failed; retrying');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, Math.max(500, this.o.leaseMs / 2));
        // Someone else may have won meanwhile; the watch (or the check) campaigns again if not.
        if (this.leader) return;
      }
    }
  }

  /** Stops acting at once; the lease is revoked (best effort) so another can take over. */
  private demote(why: string): void {
    if (!this.fence) return;
    const wasActing = this.acting;
    this.acting = false;
    this.fence = undefined;
    this.keeper?.stop();
    this.keeper = undefined;
    const leaseId = this.leaseId;
    this.leaseId = undefined;
    if (leaseId !== undefined) void this.o.store.revokeLease({ id: leaseId, ttlSeconds: this.ttlSeconds }).catch(() => undefined);
    this.o.log.warn({ why }, 'this name server no longer leads');
    if (wasActing) this.o.events?.deposed?.(why);
    for (const h of this.demoteHooks) {
      try {
        h(why);
      } catch (err) {
        this.o.log.error({ err }, 'a step-down hook failed');
      }
    }
  }

  /** Resigns (a standby takes over at once instead of after the lease) and stops following. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.presence?.stop();
    if (this.presenceLease) await this.o.store.revokeLease(this.presenceLease).catch(() => undefined);
    const fence = this.fence;
    this.demote('shutting down');
    await this.campaigning?.catch(() => undefined);
    if (fence) await this.o.store.resign(fence).catch(() => undefined);
    await this.observer?.close();
  }
}
