// Heartbeats to the name servers: registration, block reports and free space, every
// interval, to every name server listed in --nameserver (a high-availability group lists all
// its members), each on its own loop, so one that is down or slow to answer delays no other.
// Each loop keeps its own block-report session (report-session.ts): a full report, paged,
// when the name server does not know this server's blocks, and otherwise only what changed.
// The loops share one ledger of the reports (report-ledger.ts), brought up to date at each beat.
// The data server works without a name server (for tests and first boot), so a failed beat is
// logged once per outage (per name server) and retried.
//
// Which replies are acted on:
//   - only one from this server's own cluster (<data>/cluster, cluster-identity.ts): a name
//     server of another cluster, or one that lost its state and made a new cluster, is
//     refused, its commands ignored, and the blocks kept;
//   - a standby's (role 'standby') only shows it is alive: no command is run, nothing it says
//     is stored, its time is not taken;
//   - a leader's (role 'leader', or no role: a single name server, epoch absent = 0) only when
//     its epoch is not below the highest this server has seen (epoch-fence.ts): a lower one
//     is a deposed leader's, refused and counted (ugcfs_fenced_requests_total{source=
//     "heartbeat"}). A higher epoch, then the reply's cluster id and lease ends, are stored
//     (synced) before any of its commands runs, and its time feeds the cluster clock that
//     tombstone expiry follows. A command is not started once a higher epoch has been seen.
import { statfs } from 'node:fs/promises';
import type { Dispatcher } from 'undici';
import { ForeignClusterRefusal, NameserverClient } from '../src/clients/nameserver-client.ts';
import { splitUrls } from '../src/base/config.ts';
import { isUgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { DsCommand, Heartbeat, HeartbeatReply } from '../src/wire/protocol.ts';
import { ReportLedger } from './report-ledger.ts';
import { ReportSession } from './report-session.ts';
import type { BlockStore } from './block-store.ts';
import type { ClusterClock } from './cluster-clock.ts';
import type { ClusterIdentity } from './cluster-identity.ts';
import { isEpoch, type EpochFence } from './epoch-fence.ts';
import { nextBeatDelay } from './beat-schedule.ts';

export interface HeartbeatOptions {
  id: string;
  url: string;
  rack: string;
  /** the name servers' URLs, comma-separated (--nameserver) */
  nameserver: string;
  secret: string;
  /** the agent of calls to the name servers (--tls-ca) */
  dispatcher?: Dispatcher;
  intervalMs: number;
  dataDir: string;
  blockSize: number;
  store: BlockStore;
  metrics: Metrics;
  log: Logger;
  /** <data>/cluster: the cluster id and high-water marks */
  identity: ClusterIdentity;
  /** <data>/epoch: the highest leader epoch seen */
  fence: EpochFence;
  /** fed with the name server's time from every accepted reply */
  clock: ClusterClock;
}

export interface HeartbeatLoop {
  /** sends one beat to every name server now (tests, and right after start); true when a leader's reply was acted on */
  beat(): Promise<boolean>;
  stop(): Promise<void>;
}

export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

export function startHeartbeat(o: HeartbeatOptions): HeartbeatLoop {
  const ledger = new ReportLedger();
  const links = splitUrls(o.nameserver).map((url) => beatLoop(o, ledger, url));
  return {
    beat: async () => (await Promise.all(links.map((l) => l.beat()))).some(Boolean),
    async stop() {
      await Promise.all(links.map((l) => l.stop()));
    },
  };
}

/** What a beat tells every name server: built afresh for each (the report is added per message). */
async function heartbeatBody(o: HeartbeatOptions, ledger: ReportLedger): Promise<Omit<Heartbeat, 'report' | 'blocks'>> {
  const free = await freeBytes(o.dataDir);
  o.metrics.freeBytes.set(free);
  o.store.updateGauges();
  // A store made up of reports alone (test/nameserver/big-report.test.ts) gives them whole.
  const corrected = ledger.refresh(o.store.blocks ?? o.store.reports({ completeOnly: true }));
  if (corrected > 0) o.log.warn({ corrected }, 'block reports corrected by their periodic full check: a change was missed between beats');
  // A block on disk proves its id was handed out, whatever name server this one meets next.
  const held = ledger.maxId;
  if (held >= 0) await o.identity.update({ blockIds: { upTo: BigInt(held) + 1n, state: '' } });
  return {
    id: o.id,
    url: o.url,
    rack: o.rack,
    freeBytes: free,
    usedBytes: o.store.usedBytes(),
    blockSize: o.blockSize,
    ...(o.identity.cluster !== undefined ? { cluster: o.identity.cluster } : {}),
    highWater: o.identity.highWater(),
    quarantine: o.store.quarantineStats(),
  };
}

async function execute(o: HeartbeatOptions, cmd: DsCommand): Promise<void> {
  try {
    if (cmd.kind === 'delete-block') {
      // Never unlinked at once: the file goes to quarantine/, so a name server that is
      // wrong about this copy being extra cannot destroy the only one.
      if (o.store.has(cmd.block)) {
        await o.store.quarantineBlock(cmd.block, cmd.reason);
        o.log.info({ block: cmd.block, reason: cmd.reason }, 'quarantined block on name server request');
      }
    } else if (cmd.kind === 'readonly') {
      if (o.store.has(cmd.block)) await o.store.setReadonly(cmd.block, cmd.readonly);
    } else {
      o.log.warn({ cmd }, 'unknown command from name server');
    }
  } catch (err) {
    if (!isUgcfsError(err, 'UGCFS_ERR_BLOCK_NOT_FOUND')) o.log.error({ err, cmd }, 'name server command failed');
  }
}

/** One name server's loop, with its own outage and refusal state (each logged once). */
function beatLoop(o: HeartbeatOptions, ledger: ReportLedger, nameserverUrl: string): HeartbeatLoop {
  const nameserver = new NameserverClient({ nameservers: [nameserverUrl], secret: o.secret, dispatcher: o.dispatcher });
  const at = { nameserver: nameserverUrl };
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<boolean> | undefined;
  let failing = false;
  /** why the name server's replies are refused now (logged once per such outage) */
  let refusing: string | undefined;
  /** the role it answered with last (a change is logged) */
  let role: string | undefined;

  const refuse = (why: string): false => {
    if (refusing !== why) o.log.error({ ...at, cluster: o.identity.cluster, epoch: o.fence.highest }, why);
    refusing = why;
    return false;
  };
  const reachable = () => {
    if (failing) o.log.info(at, 'name server reachable again');
    failing = false;
  };

  const session = new ReportSession();
  /** beats left sending the whole list in `blocks`: a name server that answered without `report` (an older one) */
  let wholeListBeats = 0;

  /** One beat: this beat's report messages in turn; a full report asked for is sent at once (once). */
  const beatOnce = async (): Promise<boolean> => {
    let acted = false;
    for (let round = 0; round < 2; round++) {
      let hb: Awaited<ReturnType<typeof heartbeatBody>>;
      try {
        hb = await heartbeatBody(o, ledger);
      } catch (err) {
        o.log.error({ err, ...at }, 'could not build a heartbeat');
        return acted;
      }
      if (wholeListBeats > 0) {
        wholeListBeats--;
        if (wholeListBeats === 0) session.restart(); // try the report protocol again now and then
        return (await sendOne({ ...hb, blocks: ledger.list() }, Math.max(2000, o.intervalMs * 2)))?.acted ?? false;
      }
      const wasFull = session.sendsFull;
      let complete = true;
      for (const m of session.next(ledger)) {
        // A full report's page may wait behind other servers' pages at a busy name server.
        const r = await sendOne({ ...hb, report: m }, m.kind === 'full' ? Math.max(30_000, o.intervalMs * 4) : Math.max(2000, o.intervalMs * 2));
        if (r === undefined) {
          session.unanswered(m);
          return acted;
        }
        acted = r.acted || acted;
        if (r.reply === undefined) {
          // refused (another cluster) or not understood: nothing it says about the report counts
          session.unanswered(m);
          return acted;
        }
        if (r.reply.report === undefined && r.reply.role !== 'standby') {
          // A name server that does not know block-report sessions (an older version during
          // an upgrade) takes the whole list, as it always did; asked again every 60 beats.
          if (wholeListBeats === 0) o.log.info(at, 'name server answers without block-report sessions: sending the whole block list');
          wholeListBeats = 60;
          session.unanswered(m);
          return acted;
        }
        if (!session.answered(m, r.reply.report)) {
          complete = false;
          break;
        }
      }
      // Given the turn to send a full report (a new leader, a digest mismatch): send it now, not a beat later.
      if (complete || (wasFull && round > 0) || !session.sendsFull) break;
    }
    return acted;
  };

  /** Sends one heartbeat message; undefined when it got no answer. */
  const sendOne = async (hb: Heartbeat, timeoutMs: number): Promise<{ acted: boolean; reply?: HeartbeatReply } | undefined> => {
    let reply: HeartbeatReply;
    try {
      try {
        reply = await nameserver.heartbeat(hb, timeoutMs);
      } catch (err) {
        if (!(err instanceof ForeignClusterRefusal)) throw err;
        reachable();
        const theirs = err.cluster ?? 'unknown';
        const mine = o.identity.cluster;
        if (mine === undefined) return { acted: refuse(`name server ${nameserverUrl} (cluster ${theirs}) refuses this data server, which holds blocks but no cluster id: ${err.message}; blocks kept`) };
        return { acted: refuse(`name server ${nameserverUrl} belongs to cluster ${theirs}, this data server to ${mine}: refusing its commands; blocks kept`) };
      }
      reachable();
    } catch (err) {
      if (!failing) o.log.warn({ ...at, err: (err as Error).message }, 'heartbeat failed; will keep retrying');
      failing = true;
      return undefined;
    }
    try {
      return { acted: await accept(reply ?? {}), reply };
    } catch (err) {
      o.log.error({ err, ...at }, 'could not act on the name server\'s reply');
      return { acted: false, reply };
    }
  };

  /** Checks the reply's cluster, role and epoch, stores what it teaches, then runs its commands. */
  const accept = async (reply: HeartbeatReply): Promise<boolean> => {
    // A standby of another cluster is refused as a leader would be; checking stores nothing.
    const foreign = o.identity.refusal(nameserverUrl, reply);
    if (foreign !== undefined) return refuse(foreign);
    if (reply.role !== role) {
      if (reply.role !== undefined) o.log.info({ ...at, role: reply.role, epoch: reply.epoch }, `name server answers as ${reply.role}`);
      role = reply.role;
    }
    if (reply.role === 'standby') {
      if (refusing !== undefined) o.log.info(at, 'name server of this cluster answers again, as a standby');
      refusing = undefined;
      return false;
    }
    const epoch = reply.epoch ?? 0;
    if (!isEpoch(epoch)) return refuse(`name server ${nameserverUrl} sent a malformed epoch: refusing its commands`);
    // The epoch first: a deposed leader's marks and time are not taken either.
    if (!(await o.fence.admit(epoch, 'heartbeat'))) return refuse(`name server ${nameserverUrl} answers as leader of epoch ${epoch}, below epoch ${o.fence.highest} seen here: it no longer leads; refusing its commands`);
    const before = o.identity.cluster;
    // What the reply teaches is persisted (synced) before anything it asks is done.
    const refused = await o.identity.admit(nameserverUrl, reply);
    if (refused !== undefined) return refuse(refused);
    if (before === undefined && o.identity.cluster !== undefined) o.log.info({ ...at, cluster: o.identity.cluster }, 'joined cluster');
    if (refusing !== undefined) o.log.info({ ...at, cluster: o.identity.cluster, epoch }, 'name server of this cluster answers again; taking its commands');
    refusing = undefined;
    if (typeof reply.now === 'number') o.clock.observe(reply.now);
    for (const cmd of reply.commands ?? []) {
      // a leader elected meanwhile (seen on a command or another reply) takes over at once
      if (o.fence.check(epoch) === 'stale') {
        o.fence.refused('heartbeat');
        return refuse(`name server ${nameserverUrl} of epoch ${epoch} was superseded (epoch ${o.fence.highest}) while its commands ran: the rest are dropped`);
      }
      await execute(o, cmd);
    }
    return true;
  };

  const beat = (): Promise<boolean> => {
    inFlight ??= beatOnce().finally(() => (inFlight = undefined));
    return inFlight;
  };

  /** A beat, then the next on the grid of this one's start (beat-schedule.ts: beats must not fall into step). */
  const run = () => {
    const startedAt = Date.now();
    void beat().finally(() => {
      if (stopped) return;
      timer = setTimeout(run, nextBeatDelay(startedAt, Date.now(), o.intervalMs));
      timer.unref();
    });
  };
  run();

  return {
    beat,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await inFlight?.catch(() => {});
    },
  };
}
