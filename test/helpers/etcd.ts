// Real etcd members for tests, as child processes on loopback: /usr/bin/etcd from Debian's
// etcd-server package (.ci/run installs it; tests skip with etcdUsable()'s reason without
// it). A single member or a cluster of three; members can be killed (SIGKILL), frozen
// (SIGSTOP/SIGCONT) and restarted on their data. stop() kills every member and removes the
// data; every member also dies with the test process (trackChild).
//
//   const reason = etcdUsable();
//   describe.skipIf(reason)('...', () => {
//     let etcd: EtcdCluster;
//     beforeAll(async () => { etcd = await startEtcd({ members: 3 }); });
//     afterAll(() => etcd?.stop());
//   });
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { arch, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, splitLines, trackChild } from './ready-process.ts';

export const ETCD_BIN = process.env.UGCFS_TEST_ETCD ?? '/usr/bin/etcd';

let usable: string | undefined | null = null;

/** undefined when etcd can run here, else why not (for a skip message). */
export function etcdUsable(): string | undefined {
  if (usable !== null) return usable;
  if (!existsSync(ETCD_BIN)) {
    usable = `${ETCD_BIN} is missing (apt-get install etcd-server)`;
  } else {
    const r = spawnSync(ETCD_BIN, ['--version'], { env: etcdEnv(), encoding: 'utf8', timeout: 10_000 });
    usable = r.status === 0 ? undefined : `${ETCD_BIN} --version failed: ${(r.stderr || r.stdout || String(r.error)).trim().slice(0, 200)}`;
  }
  if (usable) console.warn(`etcd tests skipped: ${usable}`);
  return usable;
}

/** etcd's version line, e.g. "3.4.23". */
export function etcdVersion(): string | undefined {
  const r = spawnSync(ETCD_BIN, ['--version'], { env: etcdEnv(), encoding: 'utf8' });
  return /etcd Version: (\S+)/.exec(r.stdout ?? '')?.[1];
}

function etcdEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  // etcd 3.4 refuses to start on arm64 unless told this.
  if (arch() === 'arm64') env.ETCD_UNSUPPORTED_ARCH = 'arm64';
  for (const k of Object.keys(env)) if (k.startsWith('ETCD_') && k !== 'ETCD_UNSUPPORTED_ARCH') delete env[k];
  return env;
}

export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  /** output lines of the current process (last 500) */
  readonly lines: string[];
  readonly running: boolean;
  /** SIGKILL; resolves when it has exited */
  kill(): Promise<void>;
  /** SIGSTOP: it keeps its sockets and answers nothing */
  pause(): void;
  /** SIGCONT */
  resume(): void;
  /** starts it again on its data (after kill); resolves when it is healthy */
  restart(): Promise<void>;
}

export interface EtcdCluster {
  readonly members: EtcdMember[];
  /** every member's client URL */
  readonly endpoints: string[];
  /** kills every member and removes the data */
  stop(): Promise<void>;
}

export interface StartEtcdOptions {
  members?: 1 | 3;
  /** extra flags for every member, e.g. ['--max-txn-ops', '256'] */
  flags?: string[];
  timeoutMs?: number;
}

class Member implements EtcdMember {
  lines: string[] = [];
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly clientUrl: string,
    readonly peerUrl: string,
    readonly dataDir: string,
    private readonly args: string[],
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  spawn(): void {
    this.lines = [];
    const child = spawn(ETCD_BIN, this.args, { env: etcdEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    this.child = child;
    this.exited = new Promise((res) => child.once('exit', () => res()));
    const onLine = (l: string) => {
      this.lines.push(l);
      if (this.lines.length > 500) this.lines.shift();
    };
    splitLines(child.stdout!, onLine);
    splitLines(child.stderr!, onLine);
  }

  async waitHealthy(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      if (!this.running) throw new Error(`etcd member ${this.name} exited before it was ready:\n${this.lines.slice(-20).join('\n')}`);
      try {
        const res = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1000) });
        const body = (await res.json()) as { health?: string };
        if (body.health === 'true') return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`etcd member ${this.name} was not healthy within ${timeoutMs} ms:\n${this.lines.slice(-20).join('\n')}`);
  }

  async kill(): Promise<void> {
    if (this.running) {
      this.child!.kill('SIGCONT');
      this.child!.kill('SIGKILL');
    }
    await this.exited;
  }

  pause(): void {
    if (this.running) this.child!.kill('SIGSTOP');
  }

  resume(): void {
    if (this.running) this.child!.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    await this.kill();
    this.spawn();
    await this.waitHealthy(30_000);
  }
}

let clusters = 0;

export async function startEtcd(o: StartEtcdOptions = {}): Promise<EtcdCluster> {
  const reason = etcdUsable();
  if (reason) throw new Error(reason);
  const n = o.members ?? 1;
  const root = await mkdtemp(join(tmpdir(), 'ugcfs-etcd-'));
  const token = `ugcfs-test-${process.pid}-${++clusters}-${Date.now().toString(36)}`;
  const specs: Array<{ name: string; client: string; peer: string; dir: string }> = [];
  for (let i = 0; i < n; i++) {
    specs.push({ name: `m${i}`, client: `http://127.0.0.1:${await freePort()}`, peer: `http://127.0.0.1:${await freePort()}`, dir: join(root, `m${i}`) });
  }
  const initialCluster = specs.map((s) => `${s.name}=${s.peer}`).join(',');
  const members = specs.map((s) => new Member(s.name, s.client, s.peer, s.dir, [
    '--name', s.name,
    '--data-dir', s.dir,
    '--listen-client-urls', s.client,
    '--advertise-client-urls', s.client,
    '--listen-peer-urls', s.peer,
    '--initial-advertise-peer-urls', s.peer,
    '--initial-cluster', initialCluster,
    '--initial-cluster-state', 'new',
    '--initial-cluster-token', token,
    '--logger', 'zap',
    '--log-level', 'warn',
    ...(o.flags ?? []),
  ]));
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.clientUrl),
    stop: async () => {
      await Promise.all(members.map((m) => m.kill()));
      await rm(root, { recursive: true, force: true });
    },
  };
  try {
    for (const m of members) m.spawn();
    await Promise.all(members.map((m) => m.waitHealthy(o.timeoutMs ?? 30_000)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
