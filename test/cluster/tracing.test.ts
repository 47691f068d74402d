// Request tracing across roles (src/base/trace.ts): a real cluster — name server, three data
// servers, origin — each with --otlp-endpoint pointing at a small OTLP/HTTP receiver here
// (node:http on loopback, collecting POST /v1/traces as OTLP JSON). One upload through the
// origin, sent with a W3C traceparent of ours, must come back as one trace holding spans of
// the origin, the name server and both data servers of the write, each parented by the span
// that called it; a caller's "not sampled" must hold across every hop; a request without a
// traceparent starts a trace of its own; heartbeats and other background calls, and scrapes,
// record nothing. `ugcfs server --otlp-endpoint` (npm start) hands the flag to every role.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { CORPUS, waitFor } from '../helpers/proc.ts';
import { startAllInOne, type AllInOne } from '../deploy/all-in-one.ts';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  start: bigint;
  end: bigint;
  attributes: Record<string, string | number>;
  status: { code?: number; message?: string };
}

type OtlpValue = { stringValue?: string; intValue?: string | number; doubleValue?: number };
type OtlpAttr = { key: string; value: OtlpValue };
interface OtlpBody {
  resourceSpans: Array<{
    resource: { attributes: OtlpAttr[] };
    scopeSpans: Array<{ spans: Array<{ traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; startTimeUnixNano: string; endTimeUnixNano: string; attributes: OtlpAttr[]; status: { code?: number; message?: string } }> }>;
  }>;
}

const attrs = (list: OtlpAttr[]): Record<string, string | number> =>
  Object.fromEntries(list.map((a) => [a.key, a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : a.value.doubleValue!)]));

/** An OTLP/HTTP receiver: every span POSTed to /v1/traces, with its resource's service.name. */
function startReceiver(): Promise<{ server: Server; url: string; spans: ReceivedSpan[]; posts: string[] }> {
  const spans: ReceivedSpan[] = [];
  const posts: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posts.push(`${req.method} ${req.url} ${req.headers['content-type']}`);
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpBody;
      for (const rs of body.resourceSpans) {
        const service = String(attrs(rs.resource.attributes)['service.name']);
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({ service, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name, kind: s.kind, start: BigInt(s.startTimeUnixNano), end: BigInt(s.endTimeUnixNano), attributes: attrs(s.attributes), status: s.status });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, spans, posts })));
}

const hex = (bytes: number) => randomBytes(bytes).toString('hex');
const SERVER = 2;
const CLIENT = 3;

describe('traces across origin, name server and data servers', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let c: Cluster;
  const photo = readFileSync(join(CORPUS, 'photos', 'Garden.jpg'));
  const upload = (headers: Record<string, string>) =>
    fetch(`${c.origin!.url}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', authorization: `Bearer ${c.uploadToken}`, ...headers }, body: photo });
  const ofTrace = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);

  beforeAll(async () => {
    receiver = await startReceiver();
    // a base URL: each role adds /v1/traces
    const otlp = ['--otlp-endpoint', receiver.url];
    c = await startCluster({ dataservers: 3, replicas: 2, origin: true, nameserverArgs: otlp, dataserverArgs: otlp, originArgs: otlp });
  }, 120_000);

  afterAll(async () => {
    await c?.stop();
    receiver?.server.close();
  });

  it('one upload is one trace: origin -> name server and primary -> replica, each span parented by its caller', async () => {
    const traceId = hex(16);
    const callerSpan = hex(8);
    const res = await upload({ traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'vendor=opaque' });
    expect(res.status).toBe(201);
    const requestId = res.headers.get('x-request-id');

    // Complete once the root is in, every span's parent is, and every CLIENT span has the
    // SERVER span of the peer it called (every peer traces): spans arrive as each process
    // sends its queue, in any order.
    const spans = await waitFor("the upload's whole trace", async () => {
      const t = ofTrace(traceId);
      const ids = new Set(t.map((s) => s.spanId));
      const parents = new Set(t.map((s) => s.parentSpanId));
      const rooted = t.some((s) => s.parentSpanId === callerSpan);
      const closed = t.every((s) => s.parentSpanId === callerSpan || ids.has(s.parentSpanId ?? ''));
      const answered = t.every((s) => s.kind !== CLIENT || parents.has(s.spanId));
      return rooted && closed && answered ? t : undefined;
    }, 30_000, 200);
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    expect(byId.size).toBe(spans.length); // span ids are unique

    // The root of what we sent: the origin's SERVER span, a child of our span.
    const root = spans.find((s) => s.parentSpanId === callerSpan)!;
    expect(root).toBeDefined();
    expect(root).toMatchObject({ service: 'ugcfs-origin', kind: SERVER, name: 'POST /upload' });
    expect(root.attributes).toMatchObject({ 'http.request.method': 'POST', 'http.route': '/upload', 'http.response.status_code': 201, 'ugcfs.request_id': requestId });
    expect(spans.filter((s) => s.parentSpanId === callerSpan)).toHaveLength(1);
    // Every other span hangs off a span of the same trace.
    for (const s of spans) {
      if (s !== root) expect(byId.has(s.parentSpanId ?? ''), `${s.service} ${s.name} has its parent in the trace`).toBe(true);
      expect(s.end >= s.start).toBe(true);
      expect(s.status.code ?? 0).not.toBe(2);
    }

    // A SERVER span in another process is the child of the CLIENT span that called it.
    const calledBy = (s: ReceivedSpan) => byId.get(s.parentSpanId!)!;
    const assign = spans.find((s) => s.service === 'ugcfs-nameserver' && s.kind === SERVER && s.name === 'POST /assign')!;
    expect(assign).toBeDefined();
    expect(calledBy(assign)).toMatchObject({ service: 'ugcfs-origin', kind: CLIENT, name: 'POST /assign' });
    expect(calledBy(calledBy(assign))).toBe(root);

    const dsServed = spans.filter((s) => s.service === 'ugcfs-dataserver' && s.kind === SERVER);
    // the primary's write: called by the origin, under the upload
    const primary = dsServed.find((s) => calledBy(s).service === 'ugcfs-origin')!;
    expect(primary).toBeDefined();
    expect(calledBy(primary).kind).toBe(CLIENT);
    expect(calledBy(calledBy(primary))).toBe(root);
    expect(primary.name).toMatch(/^(PUT \/needles\/:fid|POST \/blocks\/:id\/needles)$/);
    // the replica's: called by the primary while it handled that write
    const replica = dsServed.find((s) => calledBy(s).service === 'ugcfs-dataserver')!;
    expect(replica).toBeDefined();
    expect(calledBy(replica).kind).toBe(CLIENT);
    expect(calledBy(calledBy(replica))).toBe(primary);
    expect(replica.attributes['server.port']).not.toBe(primary.attributes['server.port']);
    expect(replica.attributes['http.response.status_code']).toBeLessThan(300);
    // a CLIENT span names the peer's URL
    expect(calledBy(replica).attributes['url.full']).toMatch(/^http:\/\/127\.0\.0\.1:\d+\//);
    expect(receiver.posts.every((p) => p === 'POST /v1/traces application/json')).toBe(true);
  }, 60_000);

  it('a request without a traceparent starts its own trace, and its reads are in it', async () => {
    const up = await upload({});
    const fid = ((await up.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
    const v = await fetch(`${c.origin!.url}/${fid}.jpg?w=72`);
    expect(v.status).toBe(200);
    const rid = v.headers.get('x-request-id');
    const spans = await waitFor('the variant request\'s trace', async () => {
      const root = receiver.spans.find((s) => s.service === 'ugcfs-origin' && s.kind === SERVER && s.attributes['ugcfs.request_id'] === rid);
      if (root === undefined) return undefined;
      const t = ofTrace(root.traceId);
      return t.some((s) => s.service === 'ugcfs-dataserver' && s.kind === SERVER) ? t : undefined;
    }, 30_000, 200);
    const root = spans.find((s) => s.attributes['ugcfs.request_id'] === rid)!;
    expect(root.parentSpanId).toBeUndefined();
    expect(root.attributes['url.path']).toBe(`/${fid}.jpg`); // no query string
    // the original read from a data server, answered ahead of fastify, named by its route
    const read = spans.find((s) => s.service === 'ugcfs-dataserver' && s.kind === SERVER)!;
    expect(read.name).toBe('GET /needles/:fid');
    expect(spans.find((s) => s.spanId === read.parentSpanId)).toMatchObject({ service: 'ugcfs-origin', kind: CLIENT });
  }, 60_000);

  it('a caller\'s "not sampled" holds on every hop, and background calls and scrapes record nothing', async () => {
    const quiet = hex(16);
    expect((await upload({ traceparent: `00-${quiet}-${hex(8)}-00` })).status).toBe(201);
    for (const p of [c.nameserver, ...c.dataservers, c.origin!]) expect((await fetch(`${p.url}/metrics`)).status).toBe(200);
    // a sampled request after it, from every role it crosses, shows the exporters have sent
    // what they had (each sends its queue in order)
    const marker = hex(16);
    expect((await upload({ traceparent: `00-${marker}-${hex(8)}-01` })).status).toBe(201);
    await waitFor('the later upload\'s spans', async () => (new Set(ofTrace(marker).map((s) => s.service)).size >= 2 ? true : undefined), 30_000, 200);
    await new Promise((r) => setTimeout(r, 2500)); // two more export intervals
    expect(ofTrace(quiet)).toEqual([]);
    // every span recorded belongs to a trace begun by a request of this test: the data
    // servers' heartbeats (ten a second here) and reports, the origin's delete-feed polls
    // made none, and no scrape is a span
    const roots = receiver.spans.filter((s) => s.parentSpanId === undefined || !receiver.spans.some((p) => p.spanId === s.parentSpanId));
    // (the harness's own status polls, made without a traceparent, are traces of their own)
    const strays = roots.filter((s) => !(s.service === 'ugcfs-origin' && s.kind === SERVER) && s.name !== 'GET /status').map((s) => `${s.service} ${s.kind} ${s.name}`);
    expect(strays).toEqual([]);
    expect(receiver.spans.some((s) => /\/(metrics|healthz|heartbeat)/.test(s.name))).toBe(false);
  }, 60_000);
});

describe('traces from the all-in-one', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let s: AllInOne | undefined;

  afterAll(async () => {
    await s?.stop();
    receiver?.server.close();
  });

  it('ugcfs server --otlp-endpoint traces every role it starts', async () => {
    receiver = await startReceiver();
    // every role, each process once: one origin process, two data servers (a primary and its replica)
    s = await startAllInOne({ args: ['--otlp-endpoint', `${receiver.url}/v1/traces`, '--origin-workers', '1', '--dataservers', '2', '--replicas', '2'] });
    const traceId = hex(16);
    // the data servers register with the name server after the origin is up: retry until the write is placed
    await waitFor('an upload through the all-in-one', async () => {
      const res = await fetch(`${s!.origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...s!.uploadAuth, traceparent: `00-${traceId}-${hex(8)}-01` }, body: readFileSync(join(CORPUS, 'photos', 'Garden.jpg')) });
      return res.status === 201 ? true : undefined;
    }, 60_000, 500);
    const services = await waitFor('spans of every role', () => {
      const seen = new Set(receiver.spans.filter((x) => x.traceId === traceId).map((x) => x.service));
      return seen.size === 3 ? seen : undefined;
    }, 30_000, 200);
    expect([...services].sort()).toEqual(['ugcfs-dataserver', 'ugcfs-nameserver', 'ugcfs-origin']);
  }, 150_000);
});
