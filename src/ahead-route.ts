// Routes answered straight from node:http ahead of fastify (the data server's needle reads
// and writes, the origin's memory hits) share two mechanics, kept here once: taking the
// server's request listener so that a request the route declines still reaches fastify
// unchanged, and — for routes whose answers outlive the listener call — graceful close,
// which fastify cannot give requests it never sees.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** Answers the request and returns true, or returns false having written nothing. */
export type AheadAnswer = (req: IncomingMessage, res: ServerResponse) => boolean;

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Puts `answer` in front of the server's request listeners. Routes installed one after the
 * other chain: the later one is asked first.
 */
export function serveAhead(server: Server, answer: AheadAnswer): void {
  const before = server.listeners('request') as Listener[];
  // One listener (fastify's, or the previous route's) is the usual case: call it directly.
  const fallback: Listener =
    before.length === 1
      ? before[0]!
      : (req, res) => {
          for (const l of before) l.call(server, req, res);
        };
  server.removeAllListeners('request');
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!answer(req, res)) fallback.call(server, req, res);
  });
}

/**
 * The requests a route ahead of fastify has in hand, tied to fastify's close: from preClose
 * on `closing` is true (the route refuses new requests with 503), and close waits in onClose
 * until every request begun has ended — so a role that closes its store after `app.close()`
 * never closes it under one of them. A plain object and two methods, no closure per request.
 */
export class InFlight {
  closing = false;
  private count = 0;
  private drained: (() => void) | undefined;

  /** Registers the hooks; call before the app is ready (fastify refuses hooks after). */
  constructor(app: FastifyInstance) {
    app.addHook('preClose', async () => {
      this.closing = true;
    });
    app.addHook('onClose', async () => {
      if (this.count > 0) await new Promise<void>((r) => (this.drained = r));
    });
  }

  begin(): void {
    this.count++;
  }

  end(): void {
    if (--this.count === 0 && this.drained !== undefined) this.drained();
  }
}
