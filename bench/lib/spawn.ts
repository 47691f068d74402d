// Child processes for benchmarks: ugcfs roles, bare peers and profiled runs, started by the
// harness the tests use (test/helpers/cluster.ts). Every child is SIGKILLed when the bench
// exits, so an interrupted run leaves nothing listening.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { killAllChildren, trackChild } from '../../test/helpers/ready-process.ts';
import { BIN, ROOT } from '../../test/helpers/proc.ts';
import { startProcess, startRole, type ProcessOptions, type RoleProcess } from '../../test/helpers/cluster.ts';

export { ROOT };
export const UGCFS_BIN = BIN;
export const RUN_TS = resolve(ROOT, 'bin', 'run-ts.mjs');
/** the test and benchmark images, kept in the repository (test/fixtures/README.md) */
export const CORPUS = resolve(ROOT, 'test', 'fixtures');

/** A started server (the harness's process: url, pid, lines, stop() with SIGTERM first, kill()). */
export type Child = RoleProcess;

export { killAllChildren as killAll };

// A benchmark's servers log at info (their readiness line) whatever the shell says, and keep
// their first 2000 output lines.
const benchOptions = (opts: ProcessOptions): ProcessOptions => ({ maxLines: 2000, timeoutMs: 60_000, ...opts, env: { UGCFS_LOG_LEVEL: 'info', ...opts.env } });

/** Starts a ugcfs server role the way users do: `ugcfs <role> ...`. */
export function startUgcfs(args: string[], opts: ProcessOptions = {}): Promise<Child> {
  return startRole(args, benchOptions(opts));
}

/** Starts a TypeScript peer from bench/peers. */
export function startPeer(name: string, args: string[], opts: ProcessOptions = {}): Promise<Child> {
  return startProcess(RUN_TS, [resolve(ROOT, 'bench', 'peers', `${name}.ts`), ...args], benchOptions(opts));
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
