// The OTLP/HTTP exporter of trace.ts: finished spans are queued and POSTed as OTLP JSON
// (ExportTraceServiceRequest: resourceSpans -> scopeSpans -> spans, ids as hex, times as
// decimal strings of Unix nanoseconds) to <endpoint>/v1/traces, at most once a second or
// whenever 512 are waiting. A collector that is down or slow costs queued spans, never
// requests: past 4096 waiting, new ones are dropped (counted in the next warning), and one
// POST is out at a time.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import type { Logger } from './log.ts';

/** A finished span as the exporter keeps it. */
export interface ExportedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  startMs: number;
  endMs: number;
  attributes: Record<string, string | number>;
  /** status message of a failed span; undefined: status unset */
  error: string | undefined;
}

export interface ExporterOptions {
  endpoint: string;
  service: string;
  log: Logger;
  /** how often queued spans are sent (default 1000 ms) */
  intervalMs?: number;
}

const BATCH = 512;
const QUEUE_MAX = 4096;
const POST_TIMEOUT_MS = 10_000;
const CLOSE_WAIT_MS = 3_000;
const OTLP_STATUS_ERROR = 2;

/** The traces URL of an --otlp-endpoint: a base URL gets /v1/traces, a full one is kept. */
export function tracesUrl(endpoint: string): string {
  const u = new URL(endpoint);
  if (!u.pathname.endsWith('/v1/traces')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/traces`;
  return u.toString();
}

/** Unix nanoseconds of a millisecond time, as OTLP JSON's decimal string. */
export function unixNanos(ms: number): string {
  const whole = Math.floor(ms);
  const nanos = Math.round((ms - whole) * 1e6);
  return (BigInt(whole) * 1_000_000n + BigInt(nanos)).toString();
}

type AnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number };

function attribute(key: string, v: string | number): { key: string; value: AnyValue } {
  if (typeof v === 'string') return { key, value: { stringValue: v } };
  return { key, value: Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v } };
}

export class SpanExporter {
  private queue: ExportedSpan[] = [];
  private dropped = 0;
  private failing = false;
  private sending: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private readonly url: string;
  private readonly resource: { attributes: Array<{ key: string; value: AnyValue }> };
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 2 });
  private closed = false;

  constructor(private readonly opts: ExporterOptions) {
    this.url = tracesUrl(opts.endpoint);
    this.resource = {
      attributes: [
        attribute('service.name', opts.service),
        attribute('service.namespace', 'ugcfs'),
        attribute('service.instance.id', randomUUID()),
        attribute('host.name', hostname()),
        attribute('process.pid', process.pid),
      ],
    };
    this.timer = setInterval(() => void this.flush(), opts.intervalMs ?? 1000);
    this.timer.unref();
  }

  add(span: ExportedSpan): void {
    if (this.closed) return;
    if (this.queue.length >= QUEUE_MAX) {
      this.dropped++;
      return;
    }
    this.queue.push(span);
    if (this.queue.length >= BATCH && this.sending === undefined) void this.flush();
  }

  /** Sends what is queued, one POST of up to BATCH spans at a time. */
  flush(): Promise<void> {
    if (this.sending !== undefined || this.queue.length === 0) return this.sending ?? Promise.resolve();
    this.sending = (async () => {
      try {
        while (this.queue.length > 0) {
          const batch = this.queue.splice(0, BATCH);
          await this.post(batch);
          if (this.closed && this.queue.length === 0) break;
        }
      } finally {
        this.sending = undefined;
      }
    })();
    return this.sending;
  }

  private async post(batch: ExportedSpan[]): Promise<void> {
    const body = JSON.stringify(this.encode(batch));
    let failure: string | undefined;
    try {
      const res = await request(this.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        dispatcher: this.agent,
        headersTimeout: POST_TIMEOUT_MS,
        bodyTimeout: POST_TIMEOUT_MS,
      });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode >= 300) failure = `HTTP ${res.statusCode}`;
    } catch (err) {
      failure = (err as Error).message;
    }
    if (failure === undefined) {
      if (this.failing || this.dropped > 0) this.opts.log.info({ endpoint: this.url, dropped: this.dropped }, 'trace export resumed');
      this.failing = false;
      this.dropped = 0;
      return;
    }
    // one warning per outage, not one per batch
    if (!this.failing) this.opts.log.warn({ endpoint: this.url, err: failure, spans: batch.length }, 'trace export failed; spans are dropped until the collector answers');
    this.failing = true;
    this.dropped += batch.length;
  }

  /** The OTLP JSON body of one batch. */
  encode(batch: ExportedSpan[]): unknown {
    return {
      resourceSpans: [
        {
          resource: this.resource,
          scopeSpans: [
            {
              scope: { name: 'ugcfs' },
              spans: batch.map((s) => ({
                traceId: s.traceId,
                spanId: s.spanId,
                ...(s.parentSpanId !== undefined ? { parentSpanId: s.parentSpanId } : {}),
                name: s.name,
                kind: s.kind,
                startTimeUnixNano: unixNanos(s.startMs),
                endTimeUnixNano: unixNanos(s.endMs),
                attributes: Object.entries(s.attributes).map(([k, v]) => attribute(k, v)),
                status: s.error === undefined ? {} : { code: OTLP_STATUS_ERROR, message: s.error },
              })),
            },
          ],
        },
      ],
    };
  }

  /** Stops the timer and sends what is queued, waiting at most a few seconds. */
  async close(): Promise<void> {
    if (this.closed) return;
    clearInterval(this.timer);
    const last = this.flush();
    this.closed = true;
    await Promise.race([last, new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref())]);
    // a POST still out after the wait is abandoned
    await this.agent.destroy().catch(() => {});
  }
}
