// Many simulated data servers in one process, for the name-server scale benches
// (bench/ns-scale.ts and bench/ns-promotion.ts start it with fork and steer it over IPC). Each
// server beats every name server of --nameserver (a comma-separated list: a group's leader and
// standbys) every --heartbeat-ms with the real heartbeat (POST /ds/heartbeat through
// NameserverClient.heartbeat), as dataserver/heartbeat.ts beats: one loop and one report
// session per name server URL, so a standby gets the reports too; a full report asked for
// first (a small message), its pages sent in the beat the name server gives the turn (a
// long timeout per page), asked again next beat when told to wait; deltas after
// (ns-scale-session.ts, on dataserver/report-session.ts); and a little churn on some
// beats (a file deleted from a sealed block, one written to a block created for writes, on
// every live copy of it). A name server that does not answer `report` yet (older ones read a
// whole list in Heartbeat.blocks) is sent that instead, as data servers of its time sent it.
//
// One HTTP listener answers what the name server asks of its data servers, server i under
// the path /ds/<i+1> of its URL (the data-server client appends routes to a server's URL):
// create a block (it joins the server's reports), read-only switches, removals, pulls (the
// copy appears at once) and scrubs (matching digests). A request about a block of a killed
// server is reported to the parent: the moment repairs start.
//
//   node bin/run-ts.mjs bench/lib/dataserver-sim.ts --nameserver URL --servers N --blocks N   (UGCFS_CLUSTER_SECRET in the environment)
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { NameserverClient } from '../../src/clients/nameserver-client.ts';
import { isUgcfsError } from '../../src/base/errors.ts';
import { SECRET_HEADER } from '../../src/base/secret.ts';
import { opt, splitUrls } from '../../src/base/config.ts';
import type { BlockReport, DsCommand, Heartbeat, HeartbeatReply, ReportMessage } from '../../src/wire/protocol.ts';
import { parseFlags } from './flags.ts';
import { percentile } from './stats.ts';
import { churned, holdersOf, newBlockReport, serverBlocks, SIM_BLOCK_SIZE, SIM_FREE_BYTES, type Layout } from './ns-scale-layout.ts';
import { SimServer } from './ns-scale-server.ts';
import { nextBeatDelay } from '../../dataserver/beat-schedule.ts';

const flags = parseFlags(import.meta.url, {
  nameserver: opt.string('', 'the name server URLs, comma-separated (every one is beaten, each on its own loop)', { required: true }),
  servers: opt.int(100, 'simulated data servers', { min: 2 }),
  blocks: opt.int(1_000_000, 'blocks of the layout the servers hold after "load" (each on 2 servers)', { min: 0 }),
  heartbeatMs: opt.int(1000, 'heartbeat interval of every server', { min: 10 }),
  churnServers: opt.number(0.2, 'share of beats that carry a change', { min: 0, max: 1 }),
  churnBlocks: opt.int(2, 'blocks changed on such a beat (on every live copy)', { min: 0 }),
  load: opt.bool(false, 'hold the layout\'s blocks from the first beat (else from the "load" command)'),
});

/** What the parent sends (one request, one answer with the same id). */
type Command =
  | { id: number; cmd: 'load' }
  | { id: number; cmd: 'stats'; reset?: boolean; fullsSince?: number }
  | { id: number; cmd: 'kill'; server: number }
  | { id: number; cmd: 'exit' };

/** the session of a message asking for the turn to send a full report (dataserver/report-session.ts) */
const ASK = '-';
const send = (m: Record<string, unknown>) => process.send?.(m);
const log = (m: string) => process.stderr.write(`dataserver-sim: ${m}\n`);
const secret = process.env.UGCFS_CLUSTER_SECRET ?? '';
// dataserver/heartbeat.ts's timeouts: a full report's page may wait behind other servers' pages
const timeoutMs = Math.max(2000, flags.heartbeatMs * 2);
const pageTimeoutMs = Math.max(30_000, flags.heartbeatMs * 4);
const urls = splitUrls(flags.nameserver);
/** one client per name server, as each of a data server's beat loops has its own */
const clients = urls.map((url) => new NameserverClient({ nameservers: [url], secret }));
/** per name server, per server: when its last full report there was acknowledged whole (ms, 0: never) */
const fullAt = urls.map(() => new Float64Array(flags.servers));

let layout: Layout | undefined;
/** 'report' until the name server shows it reads only Heartbeat.blocks */
let protocol: 'report' | 'blocks' = 'report';
let protocolWhy = '';
const clusterOf = new Map<number, string>();
/** server -> when it was killed; requests about its blocks from then on are repair work */
const killed = new Map<number, number>();
/** copies of blocks outside the layout: block -> servers holding one */
const extraHolders = new Map<number, Set<number>>();
/** legacy bodies: the JSON of a server's whole list, and the version it was made at */
const listJson = new Map<number, { version: number; json: string }>();
const version = new Map<number, number>();
/** a server's last beat answered, and when it was sent */
const lastOk = new Map<number, { sentAt: number; at: number }>();
/** servers whose list the name server accepted since the last load (the Heartbeat.blocks protocol) */
const listed = new Set<number>();

const stats = {
  since: Date.now(),
  cpu: process.cpuUsage(),
  beats: 0,
  failed: 0,
  firstError: '',
  errors: {} as Record<string, number>,
  latencies: [] as number[],
  fullPages: 0,
  deltas: 0,
  deltaBlocks: 0,
  /** messages asking for the turn to send a full report; answers saying wait; turns given */
  asks: 0,
  waits: 0,
  fullRequests: 0,
  /** full reports acknowledged whole */
  fullsDone: 0,
  bodyBytes: 0,
  repairRequests: 0,
  /** requests of the name server this process failed to answer */
  httpErrors: 0,
};
let firstRepair: Record<string, unknown> | undefined;

// ---- the simulated servers' HTTP side

const httpServer = createServer((req, res) => {
  // A request the name server gave up on (its socket closed mid-body) must not end the process.
  answer(req, res).catch((err: Error) => {
    stats.httpErrors++;
    if (stats.httpErrors <= 5) log(`request ${req.method} ${req.url} failed: ${err.message}`);
    if (!res.headersSent && !res.destroyed) json(res, 500, { error: { code: 'UGCFS_ERR_INTERNAL', message: err.message } });
    else res.destroy();
  });
});
await new Promise<void>((r) => httpServer.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
const servers = Array.from({ length: flags.servers }, (_, i) => new SimServer(i, `${base}/ds/${i + 1}`, {}, urls.length));

function holders(id: number): number[] {
  const out = new Set<number>(extraHolders.get(id) ?? []);
  if (layout && id >= 1 && id <= layout.blocks) for (const i of holdersOf(id, layout.servers)) out.add(i);
  return [...out];
}

/** A copy's new report (undefined: removed), with the bookkeeping of copies outside the layout. */
function setCopy(i: number, id: number, r: BlockReport | undefined): void {
  servers[i]!.set(id, r);
  version.set(i, (version.get(i) ?? 0) + 1);
  if (layout && id >= 1 && id <= layout.blocks && holdersOf(id, layout.servers).includes(i)) return;
  let set = extraHolders.get(id);
  if (r) {
    if (!set) extraHolders.set(id, (set = new Set()));
    set.add(i);
  } else if (set) {
    set.delete(i);
    if (set.size === 0) extraHolders.delete(id);
  }
}

function json(res: ServerResponse, status: number, body?: unknown): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
const notFound = (res: ServerResponse, what: string) => json(res, 404, { error: { code: 'UGCFS_ERR_BLOCK_NOT_FOUND', message: what } });

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return text ? (JSON.parse(text) as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

const ROUTE = /^\/ds\/(\d+)\/blocks(?:\/(\d+)(?:\/(readonly|pull|scrub))?)?$/;

async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const m = ROUTE.exec((req.url ?? '').split('?')[0]!);
  const i = m ? Number(m[1]) - 1 : -1;
  const s = servers[i];
  if (!m || !s) return json(res, 404, { error: { code: 'UGCFS_ERR_NOT_FOUND', message: 'no such route on a simulated data server' } });
  // a killed server answers nothing: the connection drops, as with a dead machine
  if (killed.has(i)) return void req.socket.destroy();
  if (req.headers[SECRET_HEADER] !== secret) return json(res, 401, { error: { code: 'UGCFS_ERR_UNAUTHORIZED', message: 'cluster secret required' } });
  const body = await readBody(req);
  if (m[2] === undefined) return req.method === 'GET' ? json(res, 200, s.current()) : json(res, 404, { error: { code: 'UGCFS_ERR_NOT_FOUND', message: 'no such route' } });
  const id = Number(m[2]);
  const action = m[3] ?? (req.method === 'DELETE' ? 'delete' : req.method === 'POST' ? 'create' : 'report');
  noteRepair(id, action, i);
  const r = s.report(id);
  switch (action) {
    case 'create':
      if (r && r.size > 0) return json(res, 409, { error: { code: 'UGCFS_ERR_CONFLICT', message: `block ${id} exists and holds data` } });
      if (r) return json(res, 200, r);
      setCopy(i, id, newBlockReport(id));
      return json(res, 201, s.report(id));
    case 'report':
      return r ? json(res, 200, r) : notFound(res, `no block ${id}`);
    case 'delete':
      if (!r) return json(res, 404, { error: { code: 'UGCFS_ERR_BLOCK_NOT_FOUND', message: `no block ${id}` } });
      setCopy(i, id, undefined);
      return json(res, 204);
    case 'readonly': {
      if (!r) return notFound(res, `no block ${id}`);
      const next = { ...r, readonly: body.readonly === true };
      setCopy(i, id, next);
      return json(res, 200, next);
    }
    case 'scrub':
      // every copy of a block with the same files has the same digest
      return r ? json(res, 200, { block: id, records: r.liveCount, bad: [], digest: `sim-${id}-${r.liveCount}-${r.liveBytes}` }) : notFound(res, `no block ${id}`);
    case 'pull': {
      const from = /\/ds\/(\d+)$/.exec(String(body.from ?? ''));
      const src = from ? servers[Number(from[1]) - 1] : undefined;
      const copy = src && !killed.has(src.index) ? src.report(id) : undefined;
      if (!copy) return json(res, 502, { error: { code: 'UGCFS_ERR_UPSTREAM', message: `source has no block ${id}` } });
      setCopy(i, id, { ...copy });
      return json(res, 200, { bytes: copy.size });
    }
  }
  return json(res, 404, { error: { code: 'UGCFS_ERR_NOT_FOUND', message: 'no such route' } });
}

/** A request about a block one of the killed servers held: repair work (create is not). */
function noteRepair(id: number, action: string, at: number): void {
  if (killed.size === 0 || action === 'create' || action === 'report') return;
  const dead = holders(id).find((h) => killed.has(h));
  if (dead === undefined) return;
  stats.repairRequests++;
  if (firstRepair) return;
  firstRepair = { at: Date.now(), block: id, route: action, server: servers[at]!.id, deadServer: servers[dead]!.id };
  send({ event: 'repair', ...firstRepair });
}

// ---- heartbeats

function head(s: SimServer): Heartbeat {
  const cluster = clusterOf.get(s.index);
  return { id: s.id, url: s.url, rack: s.rack, freeBytes: SIM_FREE_BYTES, usedBytes: s.usedBytes(), blockSize: SIM_BLOCK_SIZE, ...(cluster !== undefined ? { cluster } : {}) };
}

function accept(s: SimServer, reply: HeartbeatReply): void {
  if (reply.cluster !== undefined && !clusterOf.has(s.index)) clusterOf.set(s.index, reply.cluster);
  for (const c of reply.commands ?? []) runCommand(s, c);
}

function runCommand(s: SimServer, c: DsCommand): void {
  const r = s.report(c.block);
  if (!r) return;
  if (c.kind === 'delete-block') setCopy(s.index, c.block, undefined);
  else if (c.kind === 'readonly') setCopy(s.index, c.block, { ...r, readonly: c.readonly });
}

/** Some beats carry client work: a file deleted from sealed blocks, one written to a block created for writes. */
function churn(s: SimServer): void {
  if (Math.random() >= flags.churnServers) return;
  const ids: number[] = [];
  for (let k = 0; k < flags.churnBlocks; k++) {
    const id = s.randomLayoutBlock(Math.random);
    if (id !== undefined) ids.push(id);
  }
  const open = s.writableBlocks();
  if (open.length > 0) ids.push(open[Math.floor(Math.random() * open.length)]!);
  for (const id of ids) {
    for (const h of holders(id)) {
      const r = servers[h]!.report(id);
      if (r && !killed.has(h)) setCopy(h, id, churned(r));
    }
  }
}

function failed(err: unknown): void {
  stats.failed++;
  const msg = (err as Error).message;
  stats.firstError ||= msg.slice(0, 200);
  // counted by kind: the message without its numbers and URLs
  const kind = msg.replace(/https?:\/\/\S+/g, 'URL').replace(/\d+/g, 'N').slice(0, 80);
  stats.errors[kind] = (stats.errors[kind] ?? 0) + 1;
}

function useBlocks(why: string): void {
  if (protocol === 'blocks') return;
  protocol = 'blocks';
  protocolWhy = why;
  log(`the name server does not read block reports (${why}): sending whole block lists in Heartbeat.blocks`);
  send({ event: 'protocol', protocol, why });
}

/**
 * One beat of the report protocol, as dataserver/heartbeat.ts sends it: this beat's messages
 * in turn; a full report is asked for first, and sent at once (once) when the answer gives
 * the turn, not a beat later; told to wait, the server asks again at its next beat.
 */
async function beatReport(s: SimServer, link: number): Promise<void> {
  const session = s.sessions[link]!;
  for (let round = 0; round < 2; round++) {
    const wasFull = session.sendsFull;
    let complete = true;
    for (const m of session.next()) {
      if (!session.current(m) || killed.has(s.index)) return;
      const sentAt = Date.now();
      const t0 = performance.now();
      let reply: HeartbeatReply;
      try {
        reply = await clients[link]!.heartbeat({ ...head(s), report: m }, m.kind === 'full' ? pageTimeoutMs : timeoutMs);
      } catch (err) {
        session.unanswered(m);
        if (isUgcfsError(err, 'UGCFS_ERR_BAD_REQUEST') && /blocks/.test((err as Error).message)) useBlocks(`it answered ${JSON.stringify((err as Error).message.slice(0, 80))}`);
        else failed(err);
        return;
      }
      stats.latencies.push(performance.now() - t0);
      stats.beats++;
      if (m.kind === 'full') stats.fullPages++;
      else if (m.session === ASK) stats.asks++;
      else {
        stats.deltas++;
        stats.deltaBlocks += m.blocks.length + (m.removed?.length ?? 0);
      }
      lastOk.set(s.index, { sentAt, at: Date.now() });
      accept(s, reply);
      if (reply.report === undefined) {
        useBlocks('its heartbeat reply has no `report`');
        return;
      }
      if (reply.report.full) stats[reply.report.wait ? 'waits' : 'fullRequests']++;
      const wanted = session.wantsFull;
      if (!session.answered(m, reply.report)) {
        complete = false;
        break;
      }
      if (wanted && !session.wantsFull) {
        stats.fullsDone++;
        fullAt[link]![s.index] = Date.now();
      }
    }
    if (complete || (wasFull && round > 0) || !session.sendsFull) return;
  }
}

/** What a data server of the time before reports sent: every block, every beat (its JSON kept until a block changes). */
async function beatBlocks(s: SimServer, link: number): Promise<void> {
  const v = version.get(s.index) ?? 0;
  let list = listJson.get(s.index);
  if (!list || list.version !== v) listJson.set(s.index, (list = { version: v, json: JSON.stringify(s.current()) }));
  const text = JSON.stringify(head(s));
  const body = `${text.slice(0, -1)},"blocks":${list.json}}`;
  stats.bodyBytes += body.length;
  const sentAt = Date.now();
  const t0 = performance.now();
  try {
    const res = await request(`${urls[link]!}/ds/heartbeat`, { method: 'POST', body, headers: { 'content-type': 'application/json', [SECRET_HEADER]: secret }, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    const reply = (await res.body.json()) as HeartbeatReply & { error?: { message?: string } };
    if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${reply.error?.message ?? ''}`);
    stats.latencies.push(performance.now() - t0);
    stats.beats++;
    lastOk.set(s.index, { sentAt, at: Date.now() });
    accept(s, reply);
    listed.add(s.index);
  } catch (err) {
    failed(err);
  }
}

/**
 * One server's beat loop to one name server, on the data servers' own schedule
 * (dataserver/beat-schedule.ts); the client work happens once a period, on the first name
 * server's loop.
 */
function loop(s: SimServer, link: number, delay: number): void {
  setTimeout(async () => {
    if (killed.has(s.index)) return;
    const startedAt = Date.now();
    if (link === 0) churn(s);
    try {
      await (protocol === 'report' ? beatReport(s, link) : beatBlocks(s, link));
    } catch (err) {
      failed(err);
    }
    loop(s, link, nextBeatDelay(startedAt, Date.now(), flags.heartbeatMs));
  }, delay);
}

// ---- the parent's commands

/** the most memory seen at a stats call (heap + external, and resident) */
const peak = { memory: 0, rss: 0 };
function memoryNow(): number {
  const m = process.memoryUsage();
  peak.memory = Math.max(peak.memory, m.heapUsed + m.external);
  peak.rss = Math.max(peak.rss, m.rss);
  return m.heapUsed + m.external;
}

function snapshot(reset: boolean, fullsSince = 0): Record<string, unknown> {
  const now = Date.now();
  const cpu = process.cpuUsage(stats.cpu);
  const lat = stats.latencies;
  const out = {
    protocol,
    protocolWhy,
    seconds: (now - stats.since) / 1000,
    simCpuPct: ((cpu.user + cpu.system) / 1000 / Math.max(1, now - stats.since)) * 100,
    beats: stats.beats,
    failed: stats.failed,
    firstError: stats.firstError,
    errors: stats.errors,
    beatP50Ms: percentile(lat, 50),
    beatP99Ms: percentile(lat, 99),
    beatMaxMs: lat.length ? Math.max(...lat) : Number.NaN,
    fullPages: stats.fullPages,
    deltas: stats.deltas,
    deltaBlocks: stats.deltaBlocks,
    asks: stats.asks,
    waits: stats.waits,
    fullRequests: stats.fullRequests,
    fullsDone: stats.fullsDone,
    bodyBytes: stats.bodyBytes,
    repairRequests: stats.repairRequests,
    httpErrors: stats.httpErrors,
    // servers whose blocks the name server has whole: report acknowledged, or a list accepted since the load
    listed: servers.filter((s) => !killed.has(s.index) && (protocol === 'report' ? s.sessions.every((x) => !x.wantsFull) : listed.has(s.index))).length,
    // the same per name server
    listedBy: urls.map((_, k) => servers.filter((s) => !killed.has(s.index) && !s.sessions[k]!.wantsFull).length),
    // per name server: live servers whose full report there was acknowledged whole at or after `fullsSince`, and the last such moment
    fullsBy: fullAt.map((at) => servers.filter((s) => !killed.has(s.index) && at[s.index]! >= fullsSince && at[s.index]! > 0).length),
    lastFullAtBy: fullAt.map((at) => at.reduce((m, t) => Math.max(m, t), 0)),
    live: servers.length - killed.size,
    copies: servers.reduce((n, s) => n + s.count, 0),
    registered: clusterOf.size,
    // the heap and the memory outside it (the servers' typed arrays of block ids)
    memoryBytes: memoryNow(),
    peakMemoryBytes: peak.memory,
    peakRssBytes: peak.rss,
  };
  if (reset) Object.assign(stats, { since: now, cpu: process.cpuUsage(), beats: 0, failed: 0, firstError: '', errors: {}, latencies: [], fullPages: 0, deltas: 0, deltaBlocks: 0, asks: 0, waits: 0, fullRequests: 0, fullsDone: 0, bodyBytes: 0 });
  return out;
}

/** From now on every server holds its share of the layout: a full report follows. */
function loadLayout(): { ms: number; copies: number } {
  const t0 = Date.now();
  layout = { blocks: flags.blocks, servers: flags.servers };
  const share = serverBlocks(layout);
  servers.forEach((s, i) => {
    s.load(layout!, share[i]!);
    version.set(i, (version.get(i) ?? 0) + 1);
  });
  listed.clear();
  return { ms: Date.now() - t0, copies: servers.reduce((n, s) => n + s.count, 0) };
}

process.on('message', (msg) => {
  const c = msg as Command;
  const reply = (m: Record<string, unknown>) => send({ ...m, id: c.id });
  if (c.cmd === 'stats') return reply(snapshot(c.reset === true, c.fullsSince));
  if (c.cmd === 'load') return reply(loadLayout());
  if (c.cmd === 'kill') {
    killed.set(c.server, Date.now());
    return reply({ at: killed.get(c.server), server: servers[c.server]!.id, lastBeat: lastOk.get(c.server) ?? null });
  }
  if (c.cmd === 'exit') {
    reply({});
    setTimeout(() => process.exit(0), 50);
  }
});
process.on('disconnect', () => process.exit(0));
// Said with this process's name, so a bench that shows only its own lines shows why it ended.
for (const ev of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(ev, (err) => {
    log(`${ev}: ${(err as Error)?.stack ?? String(err)}`);
    process.exit(1);
  });
}

if (flags.load) log(`holding the layout from the first beat: ${JSON.stringify(loadLayout())}`);
// each name server's loops spread over the period, offset from the others' as separate timers would be
urls.forEach((_, k) => servers.forEach((s, i) => loop(s, k, Math.floor(((i + k / urls.length) / servers.length) * flags.heartbeatMs))));
send({ event: 'ready', url: base });
