// Child processes for benchmarks: ugcfs roles, bare peers and profiled runs. Every child
// is SIGKILLed when the bench exits, so an interrupted run leaves nothing listening.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllChildren, startReady, trackChild } from '../../test/helpers/ready-process.ts';
import { ugcfsNodeFlags } from '../../src/node-flags.ts';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const UGCFS_BIN = resolve(ROOT, 'bin', 'ugcfs.mjs');
/** the node flags the bin's shebang declares, read once */
const UGCFS_NODE_FLAGS = ugcfsNodeFlags(UGCFS_BIN);
export const RUN_TS = resolve(ROOT, 'bin', 'run-ts.mjs');
/** the test and benchmark images, kept in the repository (test/fixtures/README.md) */
export const CORPUS = resolve(ROOT, 'test', 'fixtures');

export interface Child {
  url: string;
  pid: number;
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
  /** SIGTERM first (graceful, lets --cpu-prof write its file), SIGKILL after graceMs */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

export { killAllChildren as killAll };

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  nodeFlags?: string[];
  timeoutMs?: number;
  ready?: (line: Record<string, unknown>) => boolean;
  cwd?: string;
}

/** Starts `node [flags] file args` and resolves once it logs {"msg":"listening","url"}. */
export async function startNode(file: string, args: string[], opts: SpawnOptions = {}): Promise<Child> {
  const env = { ...process.env, UGCFS_LOG_LEVEL: 'info', ...opts.env };
  // Readiness is the info-level "listening" line: a quieter level would hang the start.
  if (['fatal', 'error', 'warn', 'silent'].includes(env.UGCFS_LOG_LEVEL ?? '')) env.UGCFS_LOG_LEVEL = 'info';
  const { child, lines, exited, url } = await startReady([...(opts.nodeFlags ?? []), file, ...args], {
    cwd: opts.cwd ?? ROOT,
    env,
    label: `${file} ${args.join(' ')}`,
    timeoutMs: opts.timeoutMs,
    ready: opts.ready,
    maxLines: 2000,
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    url,
    pid: child.pid!,
    child,
    lines,
    exited,
    kill: async () => {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
    stop: async (graceMs = 10_000) => {
      if (!running()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Starts a ugcfs server role the way users do: `ugcfs <role> ...`. */
export function startUgcfs(args: string[], opts: SpawnOptions = {}): Promise<Child> {
  return startNode(UGCFS_BIN, args, { ...opts, nodeFlags: [...UGCFS_NODE_FLAGS, ...(opts.nodeFlags ?? [])] });
}

/** Starts a TypeScript peer from bench/peers. */
export function startPeer(name: string, args: string[], opts: SpawnOptions = {}): Promise<Child> {
  return startNode(RUN_TS, [resolve(ROOT, 'bench', 'peers', `${name}.ts`), ...args], opts);
}

/** Runs a command to completion and returns its output (tool versions, helper scripts). */
export function runCommand(cmd: string, args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number; cwd?: string } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      res({ code: -1, stdout: '', stderr: (err as Error).message });
      return;
    }
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (err) => { stderr += err.message; });
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}
