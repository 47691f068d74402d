// Starts real ugcfs processes for tests. Every server role logs one pino line
// {"msg":"listening","url":...} once it accepts requests; start() resolves with that URL.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startReady, trackChild } from './ready-process.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ugcfsNodeFlags } from '../../src/base/node-flags.ts';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const BIN = join(ROOT, 'bin', 'ugcfs.mjs');
/** the node flags the bin declares, for spawning it the way its shebang would */
export const NODE_FLAGS = ugcfsNodeFlags(BIN);
/** the test and benchmark images, kept in the repository (test/fixtures/README.md) */
export const CORPUS = resolve(ROOT, 'test', 'fixtures');

/**
 * The cluster secret of processes a test starts without naming one: every role refuses to
 * start without a secret of 32 characters or more, and internal routes ask for it.
 * Random per test file. `ugcfs server` gets none: it makes its own <data>/secrets.env.
 */
export const TEST_SECRET = randomBytes(24).toString('hex');
/** The header that carries TEST_SECRET, for a test's own requests to internal routes. */
export const SECRET_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'x-ugcfs-secret': TEST_SECRET });

/** `env` with UGCFS_CLUSTER_SECRET = TEST_SECRET unless it names one (or the command is `server`). */
export function withTestSecret<T extends Record<string, string | undefined>>(args: readonly string[], env: T): T {
  if (args[0] === 'server' || env.UGCFS_CLUSTER_SECRET !== undefined) return env;
  return { ...env, UGCFS_CLUSTER_SECRET: TEST_SECRET };
}

export interface Proc {
  url: string;
  child: ChildProcess;
  /** every stdout/stderr line so far */
  lines: string[];
  args: string[];
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  env?: Record<string, string>;
  timeoutMs?: number;
  /** resolve when a log line matches this instead of "listening" */
  readyWhen?: (line: Record<string, unknown>) => boolean;
}

export function start(args: string[], opts: StartOptions = {}): Promise<Proc> {
  return startReady([...NODE_FLAGS, BIN, ...args], {
    cwd: ROOT,
    env: withTestSecret(args, { ...process.env, UGCFS_LOG_LEVEL: process.env.UGCFS_LOG_LEVEL ?? 'info', ...opts.env }),
    label: `ugcfs ${args.join(' ')}`,
    timeoutMs: opts.timeoutMs,
    ready: opts.readyWhen,
  }).then(({ child, lines, exited, url }) => ({
    url,
    child,
    lines,
    args,
    exited,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  }));
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a short-lived `ugcfs` command (admin CLI) and collects its output. */
export function run(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], { cwd: ROOT, env: withTestSecret(args, { ...process.env, ...opts.env }), stdio: ['pipe', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      rej(new Error(`ugcfs ${args.join(' ')} timed out\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'ugcfs-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
