// `ugcfs origin --workers N`: N origin processes serving one port through node:cluster, so an
// origin uses more than one core (nginx's worker_processes, for the same reason). The primary
// only supervises: it forks the workers, restarts one that dies, relays the few things the
// workers must do together, and stops them on SIGTERM. Each worker is a whole origin with
// its own share of the memory and disk cache budgets and of the resize slots (docs/ORIGIN.md,
// "More than one core").
//
// What the workers do together goes through one mechanism, fanOut(op, arg): the primary asks
// every other worker to run a named operation and hands the asker their answers (the asker
// does its own part itself). The operations are declared once in POOL_OPS:
//   collect  each worker's metrics, so /metrics on any worker answers for the whole origin;
//   purge    a delete answered by one worker is forgotten by every worker before the answer;
//   revive   and undone everywhere when the delete in storage failed.
import cluster, { type Worker } from 'node:cluster';
import { rm, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../src/base/log.ts';
import type { OriginConfig } from './config.ts';

export const POOL_OPS = ['collect', 'purge', 'revive'] as const;
export type PoolOp = (typeof POOL_OPS)[number];

const WORKER_ENV = 'UGCFS_ORIGIN_WORKER';
/** a sibling that does not answer within this long is left out of the answer (and logged) */
const FAN_OUT_TIMEOUT_MS = 5_000;
/** a worker that dies is replaced after this long, so a crash loop cannot spin */
const RESTART_DELAY_MS = 1_000;

type Msg =
  | { ugcfs: 'ready'; url: string }
  | { ugcfs: 'fan-out'; id: number; op: PoolOp; arg: unknown }
  | { ugcfs: 'run'; id: number; op: PoolOp; arg: unknown }
  | { ugcfs: 'ran'; id: number; result?: unknown; error?: string }
  | { ugcfs: 'fanned-out'; id: number; results: unknown[] }
  | { ugcfs: 'shutdown' };

const isMsg = (m: unknown): m is Msg => typeof m === 'object' && m !== null && typeof (m as { ugcfs?: unknown }).ugcfs === 'string';

/** Where worker `index` keeps its disk cache: worker 0 the directory itself, so a change of
 * --workers keeps the largest share warm; the others a subdirectory each. */
export function workerCacheDir(cacheDir: string, index: number): string {
  return index === 0 ? cacheDir : join(cacheDir, `worker-${index}`);
}

/** The configuration one worker runs with: its share of each cache budget and of the resize slots. */
export function workerConfig(config: OriginConfig, index: number): OriginConfig {
  const n = config.workers;
  return Object.freeze({
    ...config,
    // --resize-concurrency is the origin's, as the pixel budget is (pixelBudget)
    resizeConcurrency: Math.max(1, Math.ceil(config.resizeConcurrency / n)),
    memoryCacheBytes: Math.floor(config.memoryCacheBytes / n),
    cacheBytes: Math.floor(config.cacheBytes / n),
    cacheDir: config.cacheDir ? workerCacheDir(config.cacheDir, index) : '',
  });
}

/** Removes the disk caches of workers a smaller --workers no longer runs (they would only hold disk). */
export async function removeStaleWorkerCaches(cacheDir: string, workers: number): Promise<void> {
  if (!cacheDir) return;
  const names = await readdir(cacheDir).catch(() => [] as string[]);
  for (const name of names) {
    const m = /^worker-(\d+)$/.exec(name);
    if (m && Number(m[1]) >= workers) await rm(join(cacheDir, name), { recursive: true, force: true });
  }
}

/** The worker's side: its index, and the operations it runs for and asks of its siblings. */
export interface PoolMember {
  index: number;
  count: number;
  /** registers what this worker does when asked to run `op` */
  handle(op: PoolOp, fn: (arg: unknown) => unknown): void;
  /** runs `op` on every other worker and resolves with their answers */
  fanOut(op: PoolOp, arg: unknown): Promise<unknown[]>;
  /** tells the primary this worker serves; the primary announces the origin once all do */
  ready(url: string): void;
  /** called when the primary asks this worker to stop */
  onShutdown(fn: () => void): void;
}

/** Whether this process is a worker of `ugcfs origin --workers N`. */
export function inPool(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

/** This process's membership in a pool, or undefined when it is not a pool worker. */
export function poolMember(): PoolMember | undefined {
  const raw = process.env[WORKER_ENV];
  if (!inPool() || raw === undefined) return undefined;
  const [index, count] = raw.split('/').map(Number) as [number, number];
  const handlers = new Map<PoolOp, (arg: unknown) => unknown>();
  const waiting = new Map<number, (results: unknown[]) => void>();
  let stop = () => {};
  let next = 0;
  const send = (m: Msg) => process.send!(m);
  process.on('message', (m: unknown) => {
    if (!isMsg(m)) return;
    if (m.ugcfs === 'run') {
      const fn = handlers.get(m.op);
      Promise.resolve()
        .then(() => (fn ? fn(m.arg) : Promise.reject(new Error(`no handler for ${m.op}`))))
        .then(
          (result) => send({ ugcfs: 'ran', id: m.id, result }),
          (err: unknown) => send({ ugcfs: 'ran', id: m.id, error: String((err as Error)?.message ?? err) }),
        );
    } else if (m.ugcfs === 'fanned-out') {
      waiting.get(m.id)?.(m.results);
      waiting.delete(m.id);
    } else if (m.ugcfs === 'shutdown') stop();
  });
  return {
    index,
    count,
    handle: (op, fn) => void handlers.set(op, fn),
    fanOut: (op, arg) =>
      new Promise((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        send({ ugcfs: 'fan-out', id, op, arg });
      }),
    ready: (url) => send({ ugcfs: 'ready', url }),
    onShutdown: (fn) => void (stop = fn),
  };
}

export interface PoolPrimary {
  /** the origin's URL, once every worker serves */
  url: string;
  /** stops every worker gracefully; resolves when all have exited */
  close(): Promise<void>;
}

/**
 * The primary's side. Resolves once every worker serves; rejects (with the worker's exit code
 * on the error as `exitCode`) when a worker dies before it ever served — a start that fails
 * in one worker (a bad --presets, a port in use) fails in all of them.
 */
export async function startPool(config: OriginConfig, log: Logger): Promise<PoolPrimary> {
  const n = config.workers;
  await removeStaleWorkerCaches(config.cacheDir, n);
  const slots: Array<Worker | undefined> = new Array(n).fill(undefined);
  const everReady = new Set<number>();
  let closing = false;
  let started = false;
  let url = '';
  const pending = new Map<number, { asker: Worker; askerId: number; results: unknown[]; left: Set<number>; timer: NodeJS.Timeout }>();
  let nextRun = 0;

  const finish = (runId: number) => {
    const p = pending.get(runId);
    if (!p) return;
    pending.delete(runId);
    clearTimeout(p.timer);
    if (p.asker.isConnected()) p.asker.send({ ugcfs: 'fanned-out', id: p.askerId, results: p.results } satisfies Msg);
  };

  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const allReady = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));

  const fork = (index: number): void => {
    const w = cluster.fork({ [WORKER_ENV]: `${index}/${n}` });
    slots[index] = w;
    w.on('message', (m: unknown) => {
      if (!isMsg(m)) return;
      if (m.ugcfs === 'ready') {
        url ||= m.url;
        if (started) log.info({ worker: index }, 'origin worker replaced and serving');
        everReady.add(index);
        if (!started && everReady.size === n) {
          started = true;
          settle.resolve();
        }
      } else if (m.ugcfs === 'fan-out') {
        const runId = nextRun++;
        const targets = slots.filter((t): t is Worker => t !== undefined && t.isConnected() && t !== w);
        const left = new Set(targets.map((t) => t.id));
        const timer = setTimeout(() => {
          log.warn({ op: m.op, missing: left.size }, 'origin workers did not answer in time');
          finish(runId);
        }, FAN_OUT_TIMEOUT_MS);
        pending.set(runId, { asker: w, askerId: m.id, results: [], left, timer });
        if (targets.length === 0) finish(runId);
        for (const t of targets) t.send({ ugcfs: 'run', id: runId, op: m.op, arg: m.arg } satisfies Msg);
      } else if (m.ugcfs === 'ran') {
        const p = pending.get(m.id);
        if (!p) return;
        if (m.error !== undefined) log.warn({ worker: index, error: m.error }, 'origin worker failed a pool operation');
        else p.results.push(m.result);
        p.left.delete(w.id);
        if (p.left.size === 0) finish(m.id);
      }
    });
    w.on('exit', (code, signal) => {
      if (slots[index] === w) slots[index] = undefined;
      // Answers the dead worker owed no longer hold anyone up.
      for (const [runId, p] of pending) if (p.left.delete(w.id) && p.left.size === 0) finish(runId);
      if (closing) return;
      if (!started) {
        const err = Object.assign(new Error(`origin worker ${index} exited before serving (code ${code ?? signal})`), { exitCode: code ?? 1 });
        settle.reject(err);
        return;
      }
      log.error({ worker: index, code, signal }, 'origin worker died; starting a replacement');
      // Not unref'd: when every worker died at once, this timer is what keeps the primary up.
      setTimeout(() => { if (!closing) fork(index); }, RESTART_DELAY_MS);
    });
  };

  for (let i = 0; i < n; i++) fork(i);
  const close = async (): Promise<void> => {
    closing = true;
    const live = slots.filter((w): w is Worker => w !== undefined);
    await Promise.all(
      live.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead()) return resolve();
            w.once('exit', () => resolve());
            if (w.isConnected()) w.send({ ugcfs: 'shutdown' } satisfies Msg);
            else w.process.kill('SIGTERM');
          }),
      ),
    );
  };
  try {
    await allReady;
  } catch (err) {
    closing = true;
    for (const w of slots) w?.process.kill('SIGKILL');
    throw err;
  }
  return { url, close };
}
