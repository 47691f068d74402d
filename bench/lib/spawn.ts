// Child processes for benchmarks: ugcfs roles, bare peers and profiled runs. Every child
// is SIGKILLed when the bench exits, so an interrupted run leaves nothing listening.
import { spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const UGCFS_BIN = resolve(ROOT, 'bin', 'ugcfs.mjs');
export const RUN_TS = resolve(ROOT, 'bin', 'run-ts.mjs');
export const CORPUS = resolve(ROOT, '..', 'shared', 'corpus');

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

const live = new Set<ChildProcess>();
export function killAll(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}
process.on('exit', killAll);

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  nodeFlags?: string[];
  timeoutMs?: number;
  ready?: (line: Record<string, unknown>) => boolean;
  cwd?: string;
}

/** Starts `node [flags] file args` and resolves once it logs {"msg":"listening","url"}. */
export function startNode(file: string, args: string[], opts: SpawnOptions = {}): Promise<Child> {
  const env = { ...process.env, UGCFS_LOG_LEVEL: 'info', ...opts.env };
  // Readiness is the info-level "listening" line: a quieter level would hang the start.
  if (['fatal', 'error', 'warn', 'silent'].includes(env.UGCFS_LOG_LEVEL ?? '')) env.UGCFS_LOG_LEVEL = 'info';
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), file, ...args], {
    cwd: opts.cwd ?? ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const lines: string[] = [];
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => { live.delete(child); res(code); }));
  const ready = opts.ready ?? ((l) => l.msg === 'listening' && typeof l.url === 'string');
  return new Promise<Child>((res, rej) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill('SIGKILL');
      rej(new Error(`${file} ${args.join(' ')} did not become ready:\n${lines.slice(-15).join('\n')}`));
    }, opts.timeoutMs ?? 60_000);
    const onLine = (line: string) => {
      if (lines.length < 2000) lines.push(line);
      if (done || line[0] !== '{') return;
      let parsed: Record<string, unknown>;
      try { parsed = JSON.parse(line) as Record<string, unknown>; } catch { return; }
      if (!ready(parsed)) return;
      done = true;
      clearTimeout(timer);
      const kill = async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); await exited; };
      res({
        url: String(parsed.url ?? ''),
        pid: child.pid!,
        child,
        lines,
        exited,
        kill,
        stop: async (graceMs = 10_000) => {
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
          await exited;
          clearTimeout(t);
        },
      });
    };
    lineSplit(child.stdout!, onLine);
    lineSplit(child.stderr!, onLine);
    void exited.then((code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      rej(new Error(`${file} ${args.join(' ')} exited with ${code} before ready:\n${lines.slice(-15).join('\n')}`));
    });
  });
}

/** Starts a ugcfs server role the way users do: `ugcfs <role> ...`. */
export function startUgcfs(args: string[], opts: SpawnOptions = {}): Promise<Child> {
  return startNode(UGCFS_BIN, args, opts);
}

/** Starts a TypeScript peer from bench/peers. */
export function startPeer(name: string, args: string[], opts: SpawnOptions = {}): Promise<Child> {
  return startNode(RUN_TS, [resolve(ROOT, 'bench', 'peers', `${name}.ts`), ...args], opts);
}

function lineSplit(stream: NodeJS.ReadableStream, onLine: (l: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
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
    live.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', (err) => { stderr += err.message; });
    child.on('close', (code) => {
      live.delete(child);
      if (timer) clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}
