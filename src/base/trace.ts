// Request tracing across roles (docs/OPERATIONS-GUIDE.md, "Traces"): OpenTelemetry spans,
// W3C trace context (`traceparent`, `tracestate`) between processes, exported over OTLP/HTTP
// (trace-export.ts) when a server is given --otlp-endpoint.
//
// Off (the default) nothing here runs on a request: no tracer exists, the server installs no
// hook, and currentSpan() answers undefined from one module variable, so no span, id or
// closure is made. On, every request a server answers gets a SERVER span (parented by the
// caller's traceparent, or the root of a new trace), and every peer call made while handling
// it (src/clients/http-client.ts) a CLIENT span whose id travels as the callee's parent.
// The span being handled is found through an AsyncLocalStorage entered when the request
// arrives, so the roles' code passes nothing along. Work that no request started (heartbeats,
// repair, the delete feed) is not traced: its calls carry an unsampled traceparent, so the
// peer records nothing either. Scrapes of /metrics and /healthz are not recorded.
//
// Ours rather than the OpenTelemetry SDK: what the roles need is two headers, random ids and
// one JSON POST, and the SDK (api, sdk-trace-base, resources, the OTLP exporter and its
// transformer) is several MB loaded by every process at start, with its own context manager
// and per-span objects we could not keep off the hot paths.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from './log.ts';
import { SpanExporter, type ExportedSpan } from './trace-export.ts';

export const TRACEPARENT = 'traceparent';
export const TRACESTATE = 'tracestate';

/** OTLP span kinds. */
export const SPAN_SERVER = 2;
export const SPAN_CLIENT = 3;

/** A parent as received in a traceparent header. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const TRACEPARENT_RE = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

/**
 * Parses a W3C traceparent (version-traceid-parentid-flags). Unknown future versions are read
 * by their first four fields; version ff, all-zero ids and malformed values are ignored (the
 * request starts a new trace), as the Trace Context recommendation says.
 */
export function parseTraceparent(value: string | string[] | undefined): TraceParent | undefined {
  if (typeof value !== 'string') return undefined;
  const m = TRACEPARENT_RE.exec(value.trim());
  if (!m || m[1] === 'ff' || (m[1] === '00' && m[5] !== undefined)) return undefined;
  if (m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return undefined;
  return { traceId: m[2]!, spanId: m[3]!, sampled: (parseInt(m[4]!, 16) & 1) === 1 };
}

export function formatTraceparent(traceId: string, spanId: string, sampled: boolean): string {
  return `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
}

/** Random ids, hex, drawn from one buffer refilled 4 KiB at a time. */
class IdSource {
  private readonly buf = Buffer.alloc(4096);
  private at = this.buf.length;

  hex(bytes: number): string {
    if (this.at + bytes > this.buf.length) {
      randomFillSync(this.buf);
      this.at = 0;
    }
    const s = this.buf.toString('hex', this.at, (this.at += bytes));
    // an all-zero id is invalid; 2^-64 a draw, but never send one
    return /^0+$/.test(s) ? this.hex(bytes) : s;
  }
}

/** Wall-clock milliseconds with sub-millisecond precision (performance.now on the time origin). */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export type SpanAttributes = Record<string, string | number>;

/**
 * One span. An unsampled one (the caller said flags 00, or the sample ratio left it out)
 * carries the ids onward so every hop agrees, and is never exported.
 */
export class Span {
  readonly start = nowMs();
  readonly attributes: SpanAttributes = {};
  /** set when the span ends; ended spans ignore later ends */
  private ended = false;

  constructor(
    readonly tracer: Tracer,
    public name: string,
    readonly kind: number,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    /** false: not exported (set false once the span proves to be a scrape) */
    public sampled: boolean,
    /** the caller's tracestate, passed on unchanged */
    readonly tracestate: string | undefined,
  ) {}

  /** The traceparent a callee gets with this span as its parent. */
  traceparent(): string {
    return formatTraceparent(this.traceId, this.spanId, this.sampled);
  }

  /** Ends the span. `error`: the status message of a failed span (5xx served, a call failed). */
  end(error?: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.sampled) this.tracer.finished(this, nowMs(), error);
  }
}

export interface TracerOptions {
  /** the OTLP/HTTP endpoint: a collector's base URL (…/v1/traces is added) or the full traces URL */
  endpoint: string;
  /** share of new traces recorded, 0..1; a caller's sampled flag is always followed */
  sampleRatio: number;
  /** service.name of every span: ugcfs-<role> */
  role: string;
  log: Logger;
}

/** Spans being handled, found again in the code a request runs (made by the first tracer). */
let context: AsyncLocalStorage<Span> | undefined;
/** ids of the unsampled traceparents of untraced work (made with the first tracer) */
let backgroundIds: IdSource | undefined;

/** The span of the request being handled here, if tracing is on and one is. */
export function currentSpan(): Span | undefined {
  return context === undefined ? undefined : context.getStore();
}

/** Whether a server of this process traces (its calls then always say whether to record). */
export function tracingHere(): boolean {
  return context !== undefined;
}

/** Routes whose requests are never recorded: scrapes and probes, not work. */
const UNRECORDED_ROUTES = new Set(['/metrics', '/healthz']);

const SPAN_OF = Symbol('ugcfs.span');
type Traced = { [SPAN_OF]?: Span };

/** The server span of a request (undefined when tracing is off or the request has none). */
export function spanOfRequest(req: IncomingMessage): Span | undefined {
  return (req as IncomingMessage & Traced)[SPAN_OF];
}

/** Names a server span after its route, and records the request id it answered with. */
export function nameServerSpan(span: Span, method: string, route: string, reqId: string | undefined): void {
  if (UNRECORDED_ROUTES.has(route)) span.sampled = false;
  span.name = `${method} ${route}`;
  span.attributes['http.route'] = route;
  if (reqId !== undefined) span.attributes['ugcfs.request_id'] = reqId;
}

// ends a request's span when its response is done or abandoned (one function, no closure per request)
function endServerSpan(this: ServerResponse): void {
  const span = (this.req as IncomingMessage & Traced)[SPAN_OF];
  if (span === undefined) return;
  span.attributes['http.response.status_code'] = this.statusCode;
  span.end(this.statusCode >= 500 ? `HTTP ${this.statusCode}` : !this.writableFinished ? 'response not completed' : undefined);
}

/** One server's tracer: makes its spans and hands the finished ones to its exporter. */
export class Tracer {
  private readonly ids = new IdSource();
  private readonly exporter: SpanExporter;
  private readonly sampleRatio: number;

  constructor(opts: TracerOptions) {
    this.sampleRatio = opts.sampleRatio;
    this.exporter = new SpanExporter({ endpoint: opts.endpoint, service: `ugcfs-${opts.role}`, log: opts.log });
    context ??= new AsyncLocalStorage<Span>();
    backgroundIds ??= new IdSource();
  }

  /**
   * A request arrived: its SERVER span becomes the current span of everything the request
   * runs (entered into the request's own async context, which its body events share), and ends
   * when the response is finished or abandoned.
   */
  serve(req: IncomingMessage, res: ServerResponse): Span {
    const parent = parseTraceparent(req.headers[TRACEPARENT]);
    const state = parent === undefined ? undefined : req.headers[TRACESTATE];
    const sampled = parent === undefined ? Math.random() < this.sampleRatio : parent.sampled;
    const span = new Span(this, req.method ?? 'HTTP', SPAN_SERVER, parent?.traceId ?? this.ids.hex(16), this.ids.hex(8), parent?.spanId, sampled, typeof state === 'string' ? state : undefined);
    if (sampled) {
      const a = span.attributes;
      a['http.request.method'] = req.method ?? '';
      a['url.path'] = pathOf(req.url ?? '');
      a['server.port'] = req.socket.localPort ?? 0;
      const addr = req.socket.remoteAddress;
      if (addr !== undefined) a['client.address'] = addr;
    }
    (req as IncomingMessage & Traced)[SPAN_OF] = span;
    res.once('close', endServerSpan);
    context!.enterWith(span);
    return span;
  }

  /** A CLIENT span for a call made from `parent`'s handling. */
  client(parent: Span, method: string, url: URL): Span {
    const span = new Span(this, `${method} ${firstSegment(url.pathname)}`, SPAN_CLIENT, parent.traceId, this.ids.hex(8), parent.spanId, true, parent.tracestate);
    const a = span.attributes;
    a['http.request.method'] = method;
    a['url.full'] = `${url.origin}${url.pathname}`;
    a['server.address'] = url.hostname;
    a['server.port'] = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    return span;
  }

  /** Called by Span.end for sampled spans. */
  finished(span: Span, endMs: number, error: string | undefined): void {
    const out: ExportedSpan = {
      traceId: span.traceId,
      spanId: span.spanId,
      parentSpanId: span.parentSpanId,
      name: span.name,
      kind: span.kind,
      startMs: span.start,
      endMs,
      attributes: span.attributes,
      error,
    };
    this.exporter.add(out);
  }

  /** Sends what is still queued (bounded wait); later spans are dropped. */
  close(): Promise<void> {
    return this.exporter.close();
  }
}

/** The tracer of a server given --otlp-endpoint; undefined when it is '' (tracing off). */
export function createTracer(opts: TracerOptions): Tracer | undefined {
  return opts.endpoint === '' ? undefined : new Tracer(opts);
}

/**
 * Trace headers for a peer call made now: the current span's child as a CLIENT span (end it
 * with the call's outcome); under an unsampled parent, that parent's traceparent alone; made
 * by work no request started, an unsampled traceparent of its own. Adds nothing, and returns
 * undefined, when no server of this process traces.
 */
export function startClientSpan(method: string, url: string, headers: Record<string, string>): Span | undefined {
  if (context === undefined) return undefined;
  const parent = context.getStore();
  if (parent === undefined) {
    headers[TRACEPARENT] = formatTraceparent(backgroundIds!.hex(16), backgroundIds!.hex(8), false);
    return undefined;
  }
  if (!parent.sampled) {
    headers[TRACEPARENT] = parent.traceparent();
    return undefined;
  }
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return undefined;
  }
  const span = parent.tracer.client(parent, method, u);
  headers[TRACEPARENT] = span.traceparent();
  if (span.tracestate !== undefined) headers[TRACESTATE] = span.tracestate;
  return span;
}

/** Ends a CLIENT span with the peer's status (or the failure when there was no answer). */
export function endClientSpan(span: Span, status: number | undefined, err?: unknown): void {
  if (status !== undefined) span.attributes['http.response.status_code'] = status;
  span.end(status === undefined ? String((err as Error | undefined)?.message ?? 'no answer') : status >= 400 ? `HTTP ${status}` : undefined);
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** '/needles/3,01637037d6' -> '/needles': low-cardinality client span names. */
function firstSegment(path: string): string {
  const i = path.indexOf('/', 1);
  return i === -1 ? path : path.slice(0, i);
}
