// The simulated data servers of the name-server scale benches (bench/ns-scale.ts,
// bench/ns-promotion.ts), seen from the bench: bench/lib/dataserver-sim.ts forked with its
// flags, its commands sent over IPC (one answer per command), its events passed on, and the
// wait until the name servers have every server's blocks.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { RUN_TS } from './spawn.ts';
import { splitLines, trackChild } from '../../test/helpers/ready-process.ts';

const SIM = fileURLToPath(new URL('./dataserver-sim.ts', import.meta.url));

/** What the simulator's `stats` command answers (counters since the last reset). */
export interface SimStats {
  protocol: string; protocolWhy: string; seconds: number; simCpuPct: number; beats: number; failed: number; firstError: string; errors: Record<string, number>;
  beatP50Ms: number; beatP99Ms: number; beatMaxMs: number; fullPages: number; deltas: number; deltaBlocks: number; asks: number; waits: number; fullRequests: number; fullsDone: number;
  bodyBytes: number; repairRequests: number; httpErrors: number;
  /** live servers whose blocks every name server has whole */
  listed: number;
  /** the same, per name server (in --nameserver order) */
  listedBy: number[];
  /** per name server: live servers whose full report was acknowledged whole at or after the `fullsSince` asked about */
  fullsBy: number[];
  /** per name server: when the last full report was acknowledged whole (ms) */
  lastFullAtBy: number[];
  live: number; copies: number; registered: number; memoryBytes: number; peakMemoryBytes: number; peakRssBytes: number;
}

export interface SimOptions {
  nameservers: string[];
  servers: number;
  blocks: number;
  heartbeatMs: number;
  churnServers: number;
  churnBlocks: number;
  secret: string;
  /** the servers hold their layout blocks from the first beat (else from the `load` command) */
  load?: boolean;
  log: (m: string) => void;
  /** an event the simulator sends on its own (repair, protocol) */
  onEvent?: (m: Record<string, unknown>) => void;
}

export class SimControl {
  private child: ChildProcess | undefined;
  private rpcId = 0;
  private readonly waiting = new Map<number, (m: Record<string, unknown>) => void>();
  /** why the simulator is gone, once it is: every command then fails instead of waiting for ever */
  private gone: string | undefined;

  constructor(private readonly o: SimOptions) {}

  /** Forks the simulator; resolves with its listener's URL once its servers beat. */
  start(): Promise<string> {
    const o = this.o;
    const args = [SIM, '--nameserver', o.nameservers.join(','), '--servers', String(o.servers), '--blocks', String(o.blocks), '--heartbeat-ms', String(o.heartbeatMs), '--churn-servers', String(o.churnServers), '--churn-blocks', String(o.churnBlocks), ...(o.load ? ['--load'] : [])];
    o.log(`simulator: node bin/run-ts.mjs bench/lib/dataserver-sim.ts ${args.slice(1).join(' ')}`);
    // 16M simulated copies, and the full reports being sent, need more than the default heap
    const sim = fork(RUN_TS, args, { execArgv: ['--max-old-space-size=8192'], env: { ...process.env, UGCFS_CLUSTER_SECRET: o.secret }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.child = sim;
    trackChild(sim);
    for (const s of [sim.stdout!, sim.stderr!]) splitLines(s, (l) => process.stderr.write(`  [sim] ${l}\n`));
    let ready: (url: string) => void = () => {};
    sim.on('message', (raw) => {
      const m = raw as Record<string, unknown>;
      if (typeof m.id === 'number') {
        this.waiting.get(m.id)?.(m);
        this.waiting.delete(m.id);
      } else if (m.event === 'ready') ready(String(m.url));
      else o.onEvent?.(m);
    });
    sim.on('exit', (code, signal) => {
      if (code) o.log(`simulator exited with ${code}`);
      this.gone = `the simulator exited (${code ?? signal}): see its [sim] lines`;
      for (const w of this.waiting.values()) w({ gone: this.gone });
      this.waiting.clear();
    });
    return new Promise((r) => (ready = r));
  }

  rpc<T = Record<string, unknown>>(cmd: string, extra: Record<string, unknown> = {}): Promise<T> {
    return new Promise((resolve, reject) => {
      if (this.gone || !this.child) return reject(new Error(this.gone ?? 'the simulator is not started'));
      const id = ++this.rpcId;
      this.waiting.set(id, (m) => (m.gone ? reject(new Error(String(m.gone))) : resolve(m as T)));
      this.child.send({ id, cmd, ...extra });
    });
  }

  stats(reset = false, fullsSince?: number): Promise<SimStats> {
    return this.rpc<SimStats>('stats', { reset, ...(fullsSince !== undefined ? { fullsSince } : {}) });
  }

  /** Asks it to exit (2 s at most), then kills it. */
  async stop(): Promise<void> {
    if (this.child?.connected) await Promise.race([this.rpc('exit').catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]);
    this.child?.kill('SIGKILL');
  }
}

/**
 * Waits until `done(stats)`, saying how it goes every 15 s (`say`). Undefined `st` when
 * `progress(stats)` did not grow for `stallMs` or `timeoutMs` passed; `longestGapMs`: the
 * longest time it did not grow.
 */
export async function settled(
  sim: SimControl,
  o: { timeoutMs: number; stallMs: number; done: (s: SimStats) => boolean; progress: (s: SimStats) => number; say?: (s: SimStats) => Promise<void> | void; fullsSince?: number },
): Promise<{ st?: SimStats; last: SimStats; longestGapMs: number }> {
  const t0 = Date.now();
  let said = t0;
  let progress = { n: -1, at: t0 };
  let longestGapMs = 0;
  for (;;) {
    const s = await sim.stats(false, o.fullsSince);
    const now = Date.now();
    const n = o.progress(s);
    if (n !== progress.n) progress = { n, at: now };
    longestGapMs = Math.max(longestGapMs, now - progress.at);
    if (o.done(s)) return { st: s, last: s, longestGapMs };
    if (now - progress.at > o.stallMs || now - t0 > o.timeoutMs) return { last: s, longestGapMs };
    if (o.say && now - said >= 15_000) {
      said = now;
      await o.say(s);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}
