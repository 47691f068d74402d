// A TCP proxy for fault tests: sits on a loopback port in front of one target and can
// delay, black-hole, refuse and cut connections, so partitions and slow links are made
// for real on the wire rather than by mocking a client.
//
//   const p = await startTcpProxy(targetPort);   // p.url = http://127.0.0.1:<proxy port>
//   p.set({ delayMs: 200 });                      // every chunk held 200 ms each way
//   p.set({ bytesPerSec: 1e6 });                  // a thin link: each direction read at ~1 MB/s
//   p.set({ mode: 'blackhole' });                 // connections accepted, bytes swallowed
//   p.set({ mode: 'refuse' });                    // new connections reset at once
//   p.cut();                                      // reset every open connection now
//   p.set({ mode: 'pass', delayMs: 0 });          // heal
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * pass: forward. blackhole: accept and read, forward nothing either way (a partition seen
 * as silence, so callers must rely on timeouts). refuse: reset new connections (a partition
 * seen as connection errors). Switching mode applies to open connections as well.
 */
export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

export interface ProxyStats {
  connections: number;
  /** connections reset by cut() or by refuse mode */
  resets: number;
  bytesUp: number;
  bytesDown: number;
  /** bytes swallowed in blackhole mode */
  bytesDropped: number;
}

export interface TcpProxy {
  port: number;
  url: string;
  target: number;
  mode: ProxyMode;
  delayMs: number;
  /** 0: as fast as loopback */
  bytesPerSec: number;
  stats: ProxyStats;
  set(o: { mode?: ProxyMode; delayMs?: number; bytesPerSec?: number }): void;
  /** resets every open connection (both sides) */
  cut(): number;
  close(): Promise<void>;
}

interface Pair {
  client: Socket;
  upstream: Socket;
}

export async function startTcpProxy(targetPort: number, opts: { host?: string } = {}): Promise<TcpProxy> {
  const host = opts.host ?? '127.0.0.1';
  const pairs = new Set<Pair>();
  const stats: ProxyStats = { connections: 0, resets: 0, bytesUp: 0, bytesDown: 0, bytesDropped: 0 };

  const reset = (p: Pair) => {
    p.client.resetAndDestroy();
    p.upstream.resetAndDestroy();
    pairs.delete(p);
  };

  // Chunks keep their order: each one waits for its own deadline, and a later chunk's
  // deadline is never earlier than an earlier one's, so a timer per chunk is enough.
  const pipe = (from: Socket, to: Socket, count: (n: number) => void) => {
    from.on('data', (chunk: Buffer) => {
      if (proxy.mode === 'blackhole') {
        stats.bytesDropped += chunk.length;
        return;
      }
      count(chunk.length);
      if (proxy.bytesPerSec > 0) {
        // A thin link: stop reading for as long as this chunk takes at that rate.
        from.pause();
        setTimeout(() => from.resume(), (chunk.length / proxy.bytesPerSec) * 1000);
      }
      if (proxy.delayMs <= 0) {
        if (!to.destroyed) to.write(chunk);
        return;
      }
      setTimeout(() => {
        if (!to.destroyed) to.write(chunk);
      }, proxy.delayMs);
    });
    from.on('end', () => {
      const d = proxy.delayMs;
      if (d <= 0) to.end();
      else setTimeout(() => to.end(), d);
    });
  };

  const server: Server = createServer((client) => {
    stats.connections++;
    if (proxy.mode === 'refuse') {
      stats.resets++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ host, port: targetPort });
    const pair: Pair = { client, upstream };
    pairs.add(pair);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    // A side closing after its last (possibly delayed) bytes: let those bytes through first.
    const dropLater = () => (proxy.delayMs > 0 ? setTimeout(drop, proxy.delayMs + 5) : drop());
    client.on('close', dropLater);
    upstream.on('close', dropLater);
    pipe(client, upstream, (n) => (stats.bytesUp += n));
    pipe(upstream, client, (n) => (stats.bytesDown += n));
  });

  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(0, host, () => res());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;

  const proxy: TcpProxy = {
    port,
    url: `http://${host}:${port}`,
    target: targetPort,
    mode: 'pass',
    delayMs: 0,
    bytesPerSec: 0,
    stats,
    set(o) {
      if (o.mode !== undefined) proxy.mode = o.mode;
      if (o.delayMs !== undefined) proxy.delayMs = o.delayMs;
      if (o.bytesPerSec !== undefined) proxy.bytesPerSec = o.bytesPerSec;
      if (proxy.mode === 'refuse') proxy.cut();
    },
    cut() {
      const n = pairs.size;
      for (const p of [...pairs]) reset(p);
      stats.resets += n;
      return n;
    },
    close() {
      for (const p of [...pairs]) reset(p);
      return new Promise<void>((res) => server.close(() => res()));
    },
  };
  return proxy;
}
