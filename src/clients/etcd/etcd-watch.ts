// The watch half of the etcd client: one long POST /v3/watch whose answer is a stream of
// JSON lines. It reconnects on another member from the revision after the last one
// delivered, and checks the member it watches through (/health) so a stopped or
// partitioned member is left rather than waited on.
import { request } from 'undici';
import { sleep, type EtcdTransport } from './etcd-transport.ts';
import type { EtcdWatch, WatchEnd, WatchEventRaw, WatchHandlers, WatchRequest } from './etcd-types.ts';
import { answerError, b64, kvFromWire, num, type WireKv } from './etcd-wire.ts';

export class Watcher implements EtcdWatch {
  lastRevision: number;
  endpoint: string | undefined;
  readonly ready: Promise<void>;
  readonly done: Promise<WatchEnd>;
  private resolveReady!: () => void;
  private resolveDone!: (e: WatchEnd) => void;
  private stopped = false;
  private abort: AbortController | undefined;

  constructor(
    private readonly client: EtcdTransport,
    private readonly req: WatchRequest,
    private readonly handlers: WatchHandlers,
  ) {
    this.lastRevision = req.startRevision - 1;
    this.ready = new Promise((r) => (this.resolveReady = r));
    this.done = new Promise((r) => (this.resolveDone = r));
    void this.run();
  }

  async close(): Promise<void> {
    this.finish({ reason: 'closed' });
    await this.done;
  }

  private finish(end: WatchEnd): void {
    if (this.stopped) return;
    this.stopped = true;
    this.abort?.abort();
    this.resolveReady();
    this.resolveDone(end);
  }

  private async run(): Promise<void> {
    let backoff = 50;
    while (!this.stopped && !this.client.isClosed) {
      const endpoint = this.client.order()[0]!;
      this.endpoint = endpoint;
      let err: unknown;
      try {
        const end = await this.stream(endpoint);
        if (end) return this.finish(end);
        backoff = 50;
        err = new Error('the watch stream ended');
      } catch (e) {
        err = e;
      }
      if (this.stopped) break;
      this.client.avoid(endpoint);
      this.handlers.onReconnect?.(err, endpoint);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 1000);
    }
    this.finish({ reason: 'closed' });
  }

  /** One stream: returns a final end, or undefined (or throws) when it should be re-established. */
  private async stream(endpoint: string): Promise<WatchEnd | undefined> {
    const abort = new AbortController();
    this.abort = abort;
    const create: Record<string, unknown> = { key: b64(this.req.key), start_revision: String(this.lastRevision + 1) };
    if (this.req.rangeEnd !== undefined) create.range_end = b64(this.req.rangeEnd);
    if (this.req.prevKv) create.prev_kv = true;
    // A member that stops answering (SIGSTOP, partition, lost quorum) keeps the TCP stream
    // open and silent; its /health says so, and the stream is dropped for another member.
    let healthFailures = 0;
    const check = setInterval(() => {
      void this.client.health(endpoint, Math.min(2000, this.client.checkMs)).then((ok) => {
        healthFailures = ok ? 0 : healthFailures + 1;
        if (healthFailures >= 2 && !abort.signal.aborted) abort.abort(new Error(`etcd ${endpoint} failed its health check`));
      });
    }, this.client.checkMs);
    try {
      const res = await request(`${endpoint}/v3/watch`, {
        method: 'POST',
        body: JSON.stringify({ create_request: create }),
        headers: { 'content-type': 'application/json' },
        dispatcher: this.client.dispatcher,
        signal: abort.signal,
        headersTimeout: 10_000,
        bodyTimeout: 0,
      });
      if (res.statusCode !== 200) {
        const text = await res.body.text();
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = { message: text.slice(0, 200) };
        }
        throw answerError(endpoint, res.statusCode, parsed);
      }
      let buf = '';
      for await (const chunk of res.body) {
        buf += (chunk as Buffer).toString('utf8');
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          const end = await this.onLine(line, endpoint);
          if (end) return end;
        }
      }
      return undefined;
    } finally {
      clearInterval(check);
      if (!abort.signal.aborted) abort.abort();
    }
  }

  private async onLine(line: string, endpoint: string): Promise<WatchEnd | undefined> {
    const msg = JSON.parse(line) as { result?: Record<string, unknown>; error?: unknown };
    if (msg.error !== undefined || !msg.result) throw answerError(endpoint, 200, msg);
    const r = msg.result;
    if (r.created === true) this.resolveReady();
    if (r.canceled === true) {
      const compact = num(r.compact_revision);
      if (compact > 0) return { reason: 'compacted', compactRevision: compact };
      return { reason: 'canceled', message: String(r.cancel_reason ?? 'the watch was canceled by etcd') };
    }
    const events = ((r.events as Array<{ type?: string; kv?: WireKv; prev_kv?: WireKv }> | undefined) ?? []).map((e) => {
      const ev: WatchEventRaw = { type: e.type === 'DELETE' ? 'DELETE' : 'PUT', kv: kvFromWire(e.kv ?? {}) };
      if (e.prev_kv) ev.prevKv = kvFromWire(e.prev_kv);
      return ev;
    });
    // Events already delivered (a reconnect never asks for them again, but be sure) are dropped.
    const fresh = events.filter((e) => e.kv.modRevision > this.lastRevision);
    if (fresh.length === 0 || this.stopped) return undefined;
    const rev = fresh[fresh.length - 1]!.kv.modRevision;
    await this.handlers.onEvents(fresh, rev);
    this.lastRevision = rev;
    return undefined;
  }
}
