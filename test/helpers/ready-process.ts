// The one way tests and benchmarks start a server process: spawn node, collect every output
// line, and resolve once a JSON log line says it is ready (by default the pino line
// {"msg":"listening","url":...} every ugcfs role and bench peer prints). Every child still
// running when this process exits is SIGKILLed, so an interrupted run leaves nothing
// listening. test/helpers/proc.ts and bench/lib/spawn.ts shape the result for their callers.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

export interface ReadyProcess {
  child: ChildProcess;
  /** every stdout/stderr line so far (the first `maxLines`) */
  lines: string[];
  exited: Promise<number | null>;
  /** the ready line's `url` ('' when it had none) */
  url: string;
}

export interface ReadyOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** what the error says was started, e.g. "ugcfs dataserver --port 0" */
  label: string;
  timeoutMs?: number;
  ready?: (line: Record<string, unknown>) => boolean;
  maxLines?: number;
  /** run this executable with argv instead of node (e.g. the bin itself, through its shebang) */
  exec?: string;
}

const live = new Set<ChildProcess>();
process.on('exit', killAllChildren);

export function killAllChildren(): void {
  for (const c of live) c.kill('SIGKILL');
  live.clear();
}

/** Tracks a child started elsewhere (short-lived commands) so it dies with this process. */
export function trackChild(child: ChildProcess): void {
  live.add(child);
  child.on('exit', () => live.delete(child));
}

const isListening = (l: Record<string, unknown>) => l.msg === 'listening' && typeof l.url === 'string';

export function startReady(argv: string[], opts: ReadyOptions): Promise<ReadyProcess> {
  const child = spawn(opts.exec ?? process.execPath, argv, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const lines: string[] = [];
  const maxLines = opts.maxLines ?? Infinity;
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => { live.delete(child); res(code); }));
  const ready = opts.ready ?? isListening;
  return new Promise<ReadyProcess>((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      if (done) return;
      done = true;
      child.kill('SIGKILL');
      reject(new Error(`${opts.label} did not become ready:\n${lines.slice(-20).join('\n')}`));
    }, opts.timeoutMs ?? 60_000);
    const onLine = (line: string) => {
      if (lines.length < maxLines) lines.push(line);
      if (done || line[0] !== '{') return;
      let parsed: Record<string, unknown>;
      try {
        parsed = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (!ready(parsed)) return;
      done = true;
      clearTimeout(timer);
      resolve({ child, lines, exited, url: String(parsed.url ?? '') });
    };
    splitLines(child.stdout!, onLine);
    splitLines(child.stderr!, onLine);
    void exited.then((code) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${opts.label} exited with ${code} before ready:\n${lines.slice(-20).join('\n')}`));
    });
  });
}

export function splitLines(stream: NodeJS.ReadableStream, onLine: (l: string) => void): void {
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

/**
 * A loopback port free right now, for servers that must know a URL before they start (a
 * name server restarted on the same URL, origins listing their peers, nginx, which cannot
 * report a port it picked). Picked at random below the kernel's ephemeral range: a port
 * from port 0 comes from that range, where the many outgoing connections of a busy test
 * run also take their local ports, and one of them took such a port between our check and
 * the server's listen (EADDRINUSE in CI).
 */
export async function freePort(): Promise<number> {
  const [low, high] = EPHEMERAL;
  const top = Math.min(low, 65536) - 1;
  for (let attempt = 0; attempt < 50 && top > 20_000; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * (top - 20_000));
    if (port >= low && port <= high) continue;
    if (await canListen(port)) return port;
  }
  return listenAny();
}

const EPHEMERAL: [number, number] = (() => {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux: fall back to the IANA dynamic range
  }
  return [49152, 65535];
})();

function canListen(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

function listenAny(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => res(port));
    });
  });
}
