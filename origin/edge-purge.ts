// After a delete is acknowledged, every CDN edge in --purge-edges (and the --purge-webhook)
// is made to forget the file and all its variants, retried with backoff until it does
// (docs/ORIGIN.md, "Edge purge"). Each edge has its own queue, so one that is down delays
// only itself; a queue is bounded (--purge-queue files), and what would overflow it is
// dropped oldest first, counted and logged.
//
// Which origin sends what, with several origins (each learns every delete: its own DELETE
// route, or the name server's delete feed within --delete-feed-interval-ms):
// - An origin purges what it served itself: only it knows the exact URLs an nginx edge cached
//   from it (origin/served-urls.ts), so each origin sends its own, never another's.
// - By key (Varnish xkey, the webhook's keys) one purge covers every URL of the file, from
//   whichever origin. The fid's owner on the --peers hashring (the only origin, without
//   --peers; worker 0 of a pool) sends it even when it served nothing itself, so a file that
//   reached an edge through an origin now down or restarted is still purged. An origin
//   that served the file sends it too: duplicates are idempotent at the edge, and they are
//   bounded by the origins that served the file, so a bulk delete of cold files costs one
//   purge per file (batched, 50 keys a request), not one per origin.
//
// With a --cache-dir, every purge is journaled on disk before its delete is acknowledged and
// replayed when the origin starts again (origin/purge-journal.ts); an edge's confirmation
// is journaled too, and the purge is forgotten once every edge confirmed it.
import { mkdir, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Dispatcher } from 'undici';
import { splitUrls } from '../src/base/config.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { EDGE_PURGE, EdgeClient, nextBackoff, WebhookClient, type PurgeNotice } from '../src/clients/edge-client.ts';
import { PurgeJournal, type JournalJob } from './purge-journal.ts';
import { loadServed, saveServed } from './purge-url-snapshot.ts';
import { ServedUrls } from './served-urls.ts';

interface Job {
  fid: string;
  /** URLs still to purge at a by-URL edge (shrinks as they are confirmed) */
  urls: string[];
  paths: string[];
  keys: string[];
  /** when the delete was acknowledged (ms since the epoch) */
  since: number;
  /** its purges in the journal (several when deleted again while pending) */
  ids: number[];
}

/** fids remembered as purged, so the feed's echo of this origin's own delete is not sent twice */
const RECENT = 100_000;

/** One edge or the webhook: its queue, its backoff, its sender. */
abstract class Target {
  private readonly pending = new Map<string, Job>();
  private backoffMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private closed = false;

  constructor(readonly label: string, private readonly max: number, protected readonly p: TargetDeps) {}

  /** Sends `jobs`, calling `done` for each the edge confirmed; throws when the edge failed. */
  protected abstract send(jobs: Job[], done: (fid: string) => void): Promise<void>;

  enqueue(job: Job): void {
    const had = this.pending.get(job.fid);
    if (had) {
      had.urls.push(...job.urls.filter((u) => !had.urls.includes(u)));
      had.paths.push(...job.paths.filter((u) => !had.paths.includes(u)));
      had.keys.push(...job.keys.filter((k) => !had.keys.includes(k)));
      had.ids.push(...job.ids);
    } else {
      if (this.pending.size >= this.max) {
        const [oldest, dropped] = this.pending.entries().next().value!;
        this.pending.delete(oldest);
        this.p.settled(dropped.ids, this.label);
        this.p.metrics.edgePurgesDropped.inc({ edge: this.label });
        this.p.log.error({ edge: this.label, fid: oldest, queue: this.max }, 'edge purge queue full: oldest purge dropped (raise --purge-queue, or bring the edge back)');
      }
      this.pending.set(job.fid, job);
    }
    this.p.metrics.edgePurgesPending.set({ edge: this.label }, this.pending.size);
    if (!this.running && this.timer === undefined) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.pending.size > 0 && !this.closed) {
        const batch = [...this.pending.values()].slice(0, EDGE_PURGE.filesPerBatch);
        const done = (fid: string) => {
          const job = this.pending.get(fid);
          if (!job) return;
          this.pending.delete(fid);
          this.p.settled(job.ids, this.label);
          this.p.metrics.edgePurgeSeconds.observe({ edge: this.label }, (Date.now() - job.since) / 1000);
        };
        try {
          await this.send(batch, done);
          this.backoffMs = 0;
        } catch (err) {
          this.p.metrics.edgePurgeRequests.inc({ edge: this.label, result: 'failed' });
          this.backoffMs = nextBackoff(this.backoffMs);
          this.p.log.warn({ edge: this.label, pending: this.pending.size, retryMs: this.backoffMs, err: (err as Error).message }, 'edge purge failed; retrying');
          this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.drain();
          }, this.backoffMs);
          this.timer.unref();
          return;
        } finally {
          this.p.metrics.edgePurgesPending.set({ edge: this.label }, this.pending.size);
        }
      }
    } finally {
      this.running = false;
    }
  }

  get size(): number {
    return this.pending.size;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

class EdgeTarget extends Target {
  constructor(private readonly edge: EdgeClient, max: number, p: TargetDeps) {
    super(edge.label, max, p);
  }

  protected async send(jobs: Job[], done: (fid: string) => void): Promise<void> {
    const sent = () => this.p.metrics.edgePurgeRequests.inc({ edge: this.label, result: 'sent' });
    if (this.edge.kind !== 'url') {
      // A file reached by many legacy paths has many keys: requests stay at 50 keys each.
      const keys = [...new Set(jobs.flatMap((j) => j.keys))];
      let kind: string | undefined;
      for (let i = 0; i < keys.length && kind !== 'url'; i += EDGE_PURGE.keysPerRequest) {
        kind = await this.edge.purgeKeys(keys.slice(i, i + EDGE_PURGE.keysPerRequest));
        sent();
      }
      if (kind === 'xkey') return jobs.forEach((j) => done(j.fid));
    }
    // By URL: every URL this origin served each file by, a few at a time.
    const work = jobs.flatMap((j) => j.urls.map((url) => ({ j, url })));
    let failure: unknown;
    let next = 0;
    const worker = async () => {
      while (next < work.length && failure === undefined) {
        const { j, url } = work[next++]!;
        try {
          await this.edge.purgeUrl(url);
          sent();
          j.urls.splice(j.urls.indexOf(url), 1);
        } catch (err) {
          failure = err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(EDGE_PURGE.urlConcurrency, work.length) }, worker));
    for (const j of jobs) if (j.urls.length === 0) done(j.fid);
    if (failure !== undefined) throw failure;
  }
}

class WebhookTarget extends Target {
  constructor(private readonly hook: WebhookClient, max: number, p: TargetDeps) {
    super(hook.label, max, p);
  }

  protected async send(jobs: Job[], done: (fid: string) => void): Promise<void> {
    let failure: unknown;
    await Promise.all(
      jobs.slice(0, 4).map(async (j) => {
        const notice: PurgeNotice = { fid: j.fid, paths: j.paths, keys: j.keys };
        try {
          await this.hook.post(notice);
          this.p.metrics.edgePurgeRequests.inc({ edge: this.label, result: 'sent' });
          done(j.fid);
        } catch (err) {
          failure = err;
        }
      }),
    );
    if (failure !== undefined) throw failure;
  }
}

export interface PurgerDeps {
  metrics: Metrics;
  log: Logger;
}

interface TargetDeps extends PurgerDeps {
  /** the edge confirmed (or gave up) the journal's purges `ids` */
  settled(ids: readonly number[], label: string): void;
}

export interface EdgePurgerOptions extends PurgerDeps {
  edges: readonly EdgeClient[];
  webhook: WebhookClient | undefined;
  served: ServedUrls;
  /** whether this origin (process) sends by-key purges of `fid` even with nothing served */
  owns(fid: string): boolean;
  /** --purge-queue: files waiting per edge */
  maxPending: number;
}

export class EdgePurger {
  private readonly targets: Target[];
  private readonly recent = new Set<string>();
  private journal: PurgeJournal | undefined;
  /** where close() saves the served URLs (origin/purge-url-snapshot.ts) */
  private servedSnapshot: string | undefined;

  constructor(private readonly o: EdgePurgerOptions) {
    const deps: TargetDeps = { ...o, settled: (ids, label) => ids.forEach((id) => this.journal?.done(id, label)) };
    this.targets = [...o.edges.map((e) => new EdgeTarget(e, o.maxPending, deps)), ...(o.webhook ? [new WebhookTarget(o.webhook, o.maxPending, deps)] : [])];
  }

  /**
   * Keeps pending purges in the journal at `path` from now on, and queues what it (and the
   * journals in `adopt`) still owes each edge: the purges an earlier run left unconfirmed.
   */
  async openJournal(path: string, adopt: readonly string[] = []): Promise<number> {
    const { journal, pending } = await PurgeJournal.open(path, this.targets.map((t) => t.label), this.o.log, adopt);
    this.journal = journal;
    for (const { job, edges } of pending) {
      this.remember(job.fid);
      for (const t of this.targets) if (edges.includes(t.label)) t.enqueue(this.jobOf(job, [job.id]));
    }
    if (pending.length > 0) this.o.log.info({ journal: path, purges: pending.length }, 'edge purges pending from the last run queued again');
    return pending.length;
  }

  /** Loads the served URLs a graceful stop saved at `paths`, and saves them to `save` at close(). */
  async keepServed(paths: readonly string[], save: string): Promise<void> {
    const urls = await loadServed(paths, this.o.served, this.o.log);
    if (urls > 0) this.o.log.info({ snapshot: save, urls }, 'served URLs of the last run loaded');
    this.servedSnapshot = save;
  }

  private jobOf(j: Omit<JournalJob, 'id'>, ids: number[]): Job {
    return { fid: j.fid, urls: [...j.urls], paths: [...j.urls], keys: [...j.keys], since: j.since, ids };
  }

  /** Notes a URL that served `fid` (hit path and routes). A file already purged is purged again at once. */
  served(fid: string, url: string, legacyPath?: string): void {
    this.o.served.note(fid, url, legacyPath);
    // an answer that was under way when the delete came: purge what it may have left
    if (this.recent.size > 0 && this.recent.has(fid)) void this.deleted([fid]);
  }

  /** Changes whenever something noted may have been forgotten (ServedUrls.generation). */
  get generation(): number {
    return this.o.served.generation;
  }

  /**
   * Files whose delete is being acknowledged: queue their purge at every edge. Resolves once
   * the purges are in the journal, so the acknowledgement can wait for it.
   */
  async deleted(fids: readonly string[]): Promise<void> {
    const now = Date.now();
    const durable: Array<Promise<void>> = [];
    for (const fid of fids) {
      const rec = this.o.served.take(fid);
      if (this.recent.has(fid) && rec === undefined) continue;
      if (rec === undefined && !this.o.owns(fid)) continue;
      this.remember(fid);
      const job = { fid, urls: rec?.urls ?? [], keys: rec?.keys ?? [fid], since: now };
      const journaled = this.journal?.queue(job);
      if (journaled) durable.push(journaled.durable);
      for (const t of this.targets) t.enqueue(this.jobOf(job, journaled ? [journaled.id] : []));
    }
    await Promise.all(durable);
  }

  private remember(fid: string): void {
    this.recent.delete(fid);
    this.recent.add(fid);
    if (this.recent.size > RECENT) this.recent.delete(this.recent.values().next().value!);
  }

  /** healthz: files waiting at some edge, URLs remembered for by-URL purges, the journal's size */
  health(): { edgePurgePending: number; edgePurgeUrls: number; edgePurgeJournalBytes?: number } {
    return { edgePurgePending: this.targets.reduce((n, t) => n + t.size, 0), edgePurgeUrls: this.o.served.size, ...this.journal?.health() };
  }

  /** Stops sending; saves the served URLs (a graceful stop: the server no longer answers). */
  async close(): Promise<void> {
    for (const t of this.targets) t.close();
    if (this.servedSnapshot !== undefined) {
      await saveServed(this.servedSnapshot, this.o.served).catch((err: Error) => this.o.log.error({ snapshot: this.servedSnapshot, err: err.message }, 'served URLs not saved'));
    }
    await this.journal?.close();
  }
}

const PURGE_FILES = { journal: /^edge-purges-(\d+)\.journal$/, served: /^served-urls-(\d+)$/ };

/**
 * Where worker `index` of `workers` keeps its purge journal and served-URL snapshot, and
 * those of workers no longer run that it takes over (worker 0 does). All sit in the origin's
 * --cache-dir itself, not in a worker's own cache directory, which is removed when --workers
 * shrinks (origin/worker-pool.ts); `cacheDir` is this worker's (workerCacheDir).
 */
export async function purgeFilePaths(cacheDir: string, index: number, workers: number): Promise<{ journal: string; served: string; adopt: { journal: string[]; served: string[] } }> {
  const base = index === 0 ? cacheDir : dirname(cacheDir);
  const names = index === 0 ? await readdir(base).catch(() => [] as string[]) : [];
  const orphans = (re: RegExp) => names.filter((n) => Number(re.exec(n)?.[1] ?? -1) >= workers).map((n) => join(base, n));
  return {
    journal: join(base, `edge-purges-${index}.journal`),
    served: join(base, `served-urls-${index}`),
    adopt: { journal: orphans(PURGE_FILES.journal), served: orphans(PURGE_FILES.served) },
  };
}

/**
 * The purger --purge-edges and --purge-webhook ask for, its journal open and what an earlier
 * run left pending queued (with a --cache-dir); undefined when neither flag is given.
 */
export async function edgePurgerFor(
  config: { purgeEdges: string; purgeWebhook: string; purgeToken: string; purgeQueue: number; purgeRememberUrls: number; cacheDir: string },
  o: PurgerDeps & { peers: { ownerOf(key: string): string | undefined } | undefined; workerIndex: number; workers: number; dispatcher?: Dispatcher },
): Promise<EdgePurger | undefined> {
  const urls = splitUrls(config.purgeEdges);
  if (urls.length === 0 && config.purgeWebhook === '') return undefined;
  const forgot = (n: number) => o.metrics.servedUrlsForgotten.inc(n);
  const purger = new EdgePurger({
    edges: urls.map((u) => new EdgeClient(u, config.purgeToken, o.dispatcher)),
    webhook: config.purgeWebhook === '' ? undefined : new WebhookClient(config.purgeWebhook, config.purgeToken, o.dispatcher),
    served: new ServedUrls(config.purgeRememberUrls, forgot),
    // one process of the owning origin: worker 0 of a pool
    owns: (fid) => o.workerIndex === 0 && o.peers?.ownerOf(fid) === undefined,
    maxPending: config.purgeQueue,
    metrics: o.metrics,
    log: o.log,
  });
  if (config.cacheDir === '') {
    o.log.warn('edge purges are kept in memory only (no --cache-dir): an origin that stops loses those pending');
  } else {
    await mkdir(config.cacheDir, { recursive: true });
    const files = await purgeFilePaths(config.cacheDir, o.workerIndex, o.workers);
    await purger.openJournal(files.journal, files.adopt.journal);
    await purger.keepServed([files.served, ...files.adopt.served], files.served);
  }
  return purger;
}
