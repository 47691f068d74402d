// Raw HTTP/1.1 over a socket, for what fetch cannot do: declare a body and send only part of
// it, trickle bytes, hold connections open, and see whether the server closed the connection.
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';

export interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** the server closed the connection (within the wait) */
  closed: boolean;
  /** body bytes the client had written when the answer came */
  sent: number;
}

export function target(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

export function open(url: string): Promise<Socket> {
  const { host, port } = target(url);
  return new Promise((resolve, reject) => {
    const s = connect(port, host, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * The first answer on `s` (head and content-length body) and whether the server then closes
 * the connection; undefined when nothing is answered. Each wait is at most `waitMs`.
 */
export function readAnswer(s: Socket, sent: () => number, waitMs = 10_000): Promise<RawAnswer | undefined> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let answer: RawAnswer | undefined;
    const finish = (closed: boolean) => {
      clearTimeout(timer);
      s.removeListener('data', onData);
      if (answer) answer.closed = closed;
      resolve(answer);
    };
    let timer = setTimeout(() => finish(false), waitMs);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (answer) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      const length = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + length) return;
      answer = { status: Number(lines[0]!.split(' ')[1]), headers, body: buf.subarray(end + 4, end + 4 + length).toString(), closed: false, sent: sent() };
      clearTimeout(timer);
      timer = setTimeout(() => finish(false), waitMs);
    };
    s.on('data', onData);
    s.once('close', () => finish(true));
    s.on('error', () => undefined);
  });
}

/** Sends the head of a request declaring a `declared`-byte body, then only `first`; returns the answer. */
export async function partialBody(url: string, method: string, path: string, headers: Record<string, string>, declared: number, first: string, waitMs = 10_000): Promise<RawAnswer | undefined> {
  const s = await open(url);
  const { host, port } = target(url);
  const head = [`${method} ${path} HTTP/1.1`, `Host: ${host}:${port}`, `Content-Length: ${declared}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
  const answered = readAnswer(s, () => Buffer.byteLength(first), waitMs);
  s.write(`${head}\r\n\r\n${first}`);
  const a = await answered;
  s.destroy();
  return a;
}

/**
 * Tries to send a whole `declared`-byte JSON body in 1 MiB writes; stops when the server
 * answers or closes. Returns the status answered (0: none) and the bytes the client wrote.
 */
export async function flood(url: string, method: string, path: string, headers: Record<string, string>, declared: number): Promise<{ status: number; written: number }> {
  const s = await open(url);
  const { host, port } = target(url);
  let status = 0;
  let gone = false;
  s.on('data', (c: Buffer) => {
    const m = /^HTTP\/1\.1 (\d{3})/.exec(c.toString('latin1'));
    if (m && status === 0) status = Number(m[1]);
  });
  // a write the server will never take (it answered and closed) must not hold the flood up
  let wake = () => {};
  const stop = () => {
    gone = true;
    wake();
  };
  s.on('error', stop);
  s.on('close', stop);
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  let written = 0;
  const write = (b: Buffer | string) =>
    new Promise<void>((resolve) => {
      if (gone) return resolve();
      wake = resolve;
      s.write(b, () => resolve());
    });
  await write([`${method} ${path} HTTP/1.1`, `Host: ${host}:${port}`, 'Content-Type: application/json', `Content-Length: ${declared}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)].join('\r\n') + '\r\n\r\n[');
  while (!gone && status === 0 && written + chunk.length < declared) {
    await write(chunk);
    written += chunk.length;
  }
  // give the answer a moment to arrive if the writes were all accepted by the kernel
  for (let i = 0; i < 50 && status === 0 && !gone; i++) await new Promise((r) => setTimeout(r, 100));
  s.destroy();
  return { status, written };
}

/** Resident memory of a process, in bytes (Linux). */
export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}
