// The pieces of request tracing that need no cluster (src/base/trace.ts, trace-export.ts):
// the W3C traceparent rules, the OTLP endpoint and time encodings, and the exporter against
// a real loopback receiver — batches, a collector that is down, and close() sending the rest.
// test/cluster/tracing.test.ts follows one upload across every role.
import { createServer, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/base/log.ts';
import { SpanExporter, tracesUrl, unixNanos, type ExportedSpan } from '../../src/base/trace-export.ts';
import { createTracer, currentSpan, formatTraceparent, parseTraceparent, startClientSpan } from '../../src/base/trace.ts';

const T = '4bf92f3577b34da6a3ce929d0e0e4736';
const S = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('reads version 00 and the sampled flag, and future versions by their first fields', () => {
    expect(parseTraceparent(`00-${T}-${S}-01`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(parseTraceparent(`00-${T}-${S}-00`)).toEqual({ traceId: T, spanId: S, sampled: false });
    // other flag bits are not "sampled"
    expect(parseTraceparent(`00-${T}-${S}-02`)?.sampled).toBe(false);
    expect(parseTraceparent(`cc-${T}-${S}-01-what-comes-later`)).toEqual({ traceId: T, spanId: S, sampled: true });
    expect(formatTraceparent(T, S, true)).toBe(`00-${T}-${S}-01`);
  });

  it('ignores what the recommendation says to ignore', () => {
    for (const bad of [
      undefined,
      '',
      [`00-${T}-${S}-01`, `00-${T}-${S}-01`], // sent twice
      `ff-${T}-${S}-01`, // version ff
      `00-${T}-${S}-01-extra`, // version 00 has exactly four fields
      `00-${'0'.repeat(32)}-${S}-01`,
      `00-${T}-${'0'.repeat(16)}-01`,
      `00-${T.toUpperCase()}-${S}-01`, // lowercase hex only
      `00-${T.slice(1)}-${S}-01`,
      `00_${T}_${S}_01`,
    ]) {
      expect(parseTraceparent(bad as string | undefined), String(bad)).toBeUndefined();
    }
  });
});

describe('OTLP encodings', () => {
  it('adds /v1/traces to a base URL and keeps a full one', () => {
    expect(tracesUrl('http://127.0.0.1:4318')).toBe('http://127.0.0.1:4318/v1/traces');
    expect(tracesUrl('http://collector:4318/otlp/')).toBe('http://collector:4318/otlp/v1/traces');
    expect(tracesUrl('https://collector/v1/traces')).toBe('https://collector/v1/traces');
  });

  it('writes times as decimal Unix nanoseconds', () => {
    expect(unixNanos(1_700_000_000_123.456789)).toMatch(/^1700000000123456\d{3}$/);
    expect(unixNanos(0)).toBe('0');
  });
});

/** A loopback OTLP receiver answering `status.code`; `bodies` are the JSON accepted. */
function receiver(): Promise<{ server: Server; url: string; bodies: any[]; status: { code: number } }> {
  const bodies: any[] = [];
  const status = { code: 200 };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (status.code === 200) bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      res.writeHead(status.code).end('{}');
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, bodies, status })));
}

function span(i: number): ExportedSpan {
  return { traceId: T, spanId: i.toString(16).padStart(16, '0'), parentSpanId: i === 1 ? undefined : S, name: `GET /x${i}`, kind: 2, startMs: 1_700_000_000_000 + i, endMs: 1_700_000_000_001.5 + i, attributes: { 'http.route': '/x', 'http.response.status_code': 200, ratio: 0.5 }, error: i === 3 ? 'HTTP 500' : undefined };
}

describe('the exporter', () => {
  const servers: Server[] = [];
  afterEach(() => servers.splice(0).forEach((s) => s.close()));

  it('posts OTLP JSON with the resource, hex ids, nanosecond strings and typed attributes; close() sends the rest', async () => {
    const r = await receiver();
    servers.push(r.server);
    const lines: string[] = [];
    const log = createLogger({ name: 'test', level: 'info', destination: { write: (l: string) => void lines.push(l) } });
    const e = new SpanExporter({ endpoint: r.url, service: 'ugcfs-test', log, intervalMs: 60_000 });
    for (let i = 1; i <= 3; i++) e.add(span(i));
    await e.close();
    expect(r.bodies).toHaveLength(1);
    const rs = r.bodies[0].resourceSpans[0];
    expect(rs.resource.attributes).toContainEqual({ key: 'service.name', value: { stringValue: 'ugcfs-test' } });
    const spans = rs.scopeSpans[0].spans;
    expect(spans).toHaveLength(3);
    expect(spans[0]).toMatchObject({ traceId: T, spanId: '0000000000000001', name: 'GET /x1', kind: 2, startTimeUnixNano: '1700000000001000000', endTimeUnixNano: '1700000000002500000', status: {} });
    expect(spans[0].parentSpanId).toBeUndefined();
    expect(spans[1].parentSpanId).toBe(S);
    expect(spans[0].attributes).toEqual([
      { key: 'http.route', value: { stringValue: '/x' } },
      { key: 'http.response.status_code', value: { intValue: '200' } },
      { key: 'ratio', value: { doubleValue: 0.5 } },
    ]);
    expect(spans[2].status).toEqual({ code: 2, message: 'HTTP 500' });
    // closed: later spans are not taken
    e.add(span(4));
    expect(r.bodies).toHaveLength(1);
  });

  it('drops spans while the collector fails, warns once, and says how many when it answers again', async () => {
    const r = await receiver();
    servers.push(r.server);
    r.status.code = 503;
    const lines: Array<Record<string, unknown>> = [];
    const log = createLogger({ name: 'test', level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
    const e = new SpanExporter({ endpoint: r.url, service: 'ugcfs-test', log, intervalMs: 60_000 });
    e.add(span(1));
    await e.flush();
    e.add(span(2));
    await e.flush();
    expect(lines.filter((l) => l.msg === 'trace export failed; spans are dropped until the collector answers')).toHaveLength(1);
    r.status.code = 200;
    e.add(span(3));
    await e.flush();
    expect(lines.find((l) => l.msg === 'trace export resumed')).toMatchObject({ dropped: 2 });
    expect(r.bodies.flatMap((b) => b.resourceSpans[0].scopeSpans[0].spans.map((x: { name: string }) => x.name))).toEqual(['GET /x3']);
    await e.close();
  });
});

describe('a process without a tracer', () => {
  it('adds no header and makes no span', () => {
    const headers: Record<string, string> = {};
    expect(currentSpan()).toBeUndefined();
    expect(startClientSpan('GET', 'http://127.0.0.1:1/x', headers)).toBeUndefined();
    expect(headers).toEqual({});
    expect(createTracer({ endpoint: '', sampleRatio: 1, role: 'origin', log: createLogger({ name: 'test', level: 'silent' }) })).toBeUndefined();
  });
});
