// GET / on the name server: the cluster at a glance for a person with a browser — data
// servers with capacity bars, replication health and running work. Rendered on the server
// from the same ClusterStatus as GET /status, with no scripts or external assets (it must
// work on an isolated admin network), refreshing itself every few seconds.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { UgcfsError } from '../src/base/errors.ts';
import { NS_ROUTES, type ClusterStatus, type DataserverStatus, type Operation } from '../src/wire/protocol.ts';
import { secretEquals } from '../src/base/secret.ts';
import type { NameserverContext } from './context.ts';

export const REFRESH_SECONDS = 5;

function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

function ago(ms: number | undefined): string {
  if (ms === undefined) return 'never';
  if (ms < 1000) return 'just now';
  const s = Math.round(ms / 1000);
  return s < 120 ? `${s} s ago` : `${Math.round(s / 60)} min ago`;
}

function bar(fraction: number, label: string, cls = ''): string {
  const pct = Math.max(0, Math.min(100, fraction * 100));
  const level = cls || (pct >= 90 ? 'bad' : pct >= 75 ? 'warn' : 'ok');
  return `<div class="bar" title="${esc(label)}"><div class="fill ${level}" style="width:${pct.toFixed(1)}%${pct > 0 ? ';min-width:3px' : ''}"></div><span>${esc(label)}</span></div>`;
}

function dataserverRow(d: DataserverStatus): string {
  const total = d.usedBytes + d.freeBytes;
  const state = !d.alive ? 'dead' : d.draining ? 'draining' : 'alive';
  return `<tr data-ds="${esc(d.id)}" class="${state}">
<td class="id">${esc(d.id)}</td><td><span class="pill ${state}">${state}</span></td><td>${esc(d.rack || '—')}</td>
<td class="num">${d.blocks}</td><td class="cap">${bar(total > 0 ? d.usedBytes / total : 0, `${formatBytes(d.usedBytes)} used of ${formatBytes(total)}`)}</td>
<td class="num">${esc(formatBytes(d.freeBytes))}</td><td>${esc(ago(d.lastSeenMs))}</td><td class="url">${esc(d.url)}</td></tr>`;
}

/** Data servers refused as of another cluster: shown apart, they are not part of this one. */
function foreignSection(s: ClusterStatus): string {
  const foreign = s.foreignDataservers ?? [];
  if (foreign.length === 0) return '';
  const rows = foreign
    .map((d) => `<tr data-foreign-ds="${esc(d.id)}" class="dead"><td class="id">${esc(d.id)}</td><td><span class="pill dead">foreign</span></td><td>${esc(d.cluster ?? '(none)')}</td><td class="num">${d.blocks}</td><td>${esc(ago(d.lastSeenMs))}</td><td class="url">${esc(d.url)}</td><td>${esc(d.reason)}</td></tr>`)
    .join('\n');
  return `<section data-testid="foreign"><h2>Foreign data servers (${foreign.length})</h2><p class="muted">They send heartbeats here but belong to another cluster (or hold blocks this name server never knew): refused, nothing they report is used, their blocks are kept.</p>
<table><thead><tr><th>id</th><th>state</th><th>their cluster</th><th>blocks</th><th>last heartbeat</th><th>url</th><th>why</th></tr></thead><tbody>
${rows}
</tbody></table></section>
`;
}

function nameserverSection(s: ClusterStatus): string {
  const list = s.nameservers ?? [];
  if (list.length <= 1) return '';
  const rows = list
    .map((n) => `<tr data-nameserver="${esc(n.url)}"><td class="url">${esc(n.url)}</td><td><span class="pill ${n.role === 'leader' ? 'alive' : ''}">${esc(n.role ?? 'unknown')}</span></td><td class="num">${n.epoch}</td><td>${n.alive ? 'up' : '<span class="pill dead">down</span>'}</td></tr>`)
    .join('\n');
  return `<section data-testid="nameservers"><h2>Name servers (${list.length})</h2><table><thead><tr><th>url</th><th>role</th><th>epoch</th><th>health</th></tr></thead><tbody>
${rows}
</tbody></table></section>
`;
}

function operationRow(op: Operation): string {
  const frac = op.total > 0 ? op.done / op.total : op.state === 'done' ? 1 : 0;
  return `<tr data-op="${esc(op.id)}"><td>${esc(op.kind)}</td><td><span class="pill ${op.state === 'failed' ? 'dead' : op.state === 'running' ? 'alive' : ''}">${esc(op.state)}</span></td>
<td class="cap">${bar(frac, `${op.done} / ${op.total}${op.bytesDone ? ` · ${formatBytes(op.bytesDone)}` : ''}`, 'ok')}</td><td>${esc(op.message ?? '')}</td><td class="muted">${op.finishedAt ? `finished ${esc(ago(Date.now() - op.finishedAt))}` : `started ${esc(ago(Date.now() - op.startedAt))}`}</td></tr>`;
}

export interface PageExtras {
  /** blocks the name server is working on right now (repairing, moving, compacting), by reason */
  busyBlocks: Array<{ id: number; reason: string }>;
  uptimeMs: number;
  now: Date;
  /** --repair-delay-ms, so a reader knows when copies will be re-made */
  repairDelayMs: number;
}

export function renderStatusPage(s: ClusterStatus, x: PageExtras): string {
  const alive = s.dataservers.filter((d) => d.alive).length;
  const total = s.usedBytes + s.freeBytes;
  const healthy = s.underReplicatedBlocks === 0 && alive === s.dataservers.length;
  const health = s.underReplicatedBlocks > 0
    ? `<span class="pill dead">${s.underReplicatedBlocks} block${s.underReplicatedBlocks === 1 ? '' : 's'} under-replicated</span>`
    : alive < s.dataservers.length
      ? `<span class="pill draining">every block has ${s.replicas} copies; ${s.dataservers.length - alive} data server${s.dataservers.length - alive === 1 ? '' : 's'} down</span>`
      : `<span class="pill alive">every block has ${s.replicas} copies</span>`;
  const running = s.operations.filter((o) => o.state === 'running' || o.state === 'planned');
  const finished = s.operations
    .filter((o) => !(o.state === 'running' || o.state === 'planned'))
    .sort((a, b) => (b.finishedAt ?? b.startedAt) - (a.finishedAt ?? a.startedAt))
    .slice(0, 5);
  const work = running.length + x.busyBlocks.length;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="${REFRESH_SECONDS}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ugcfs · ${alive}/${s.dataservers.length} data servers · ${healthy ? 'healthy' : 'attention'}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;justify-content:space-between;align-items:baseline}
header h1{margin:0;font-size:20px}header small{color:#aab}
main{padding:16px 24px;max-width:1200px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border-radius:8px;padding:12px 16px;min-width:150px;box-shadow:0 1px 2px #0002}
.card .v{font-size:26px;font-weight:600}.card .k{color:#667;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
section{background:#fff;border-radius:8px;padding:12px 16px;margin-bottom:16px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #eceef2;vertical-align:middle}
th{font-size:12px;color:#667;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}td.url{color:#667;font-size:12px}td.id{font-weight:600}
tr.dead td{color:#a33}
.pill{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;background:#e3e6ec}
.pill.alive{background:#d6f5df;color:#145c2a}.pill.dead{background:#fbd9d9;color:#8a1c1c}.pill.draining{background:#fdf0c8;color:#6b5200}
.bar{position:relative;background:#e3e6ec;border-radius:4px;height:18px;min-width:220px;overflow:hidden}
.bar span{position:absolute;left:8px;top:0;font-size:12px;line-height:18px;color:#1d2330}
.fill{height:100%}.fill.ok{background:#8fd3a5}.fill.warn{background:#f3d37a}.fill.bad{background:#ef9a9a}
.muted{color:#889}.card .v.alarm{color:#b3261e}
</style></head>
<body>
<header><h1>ugcfs cluster</h1><small>${s.cluster !== undefined ? `${esc(s.cluster)} · ` : ''}name server · up ${esc(ago(x.uptimeMs).replace(' ago', ''))} · ${esc(x.now.toISOString().replace('T', ' ').slice(0, 19))} UTC · refreshes every ${REFRESH_SECONDS} s</small></header>
<main>
<div class="cards">
<div class="card"><div class="k">data servers alive</div><div class="v" data-testid="alive">${alive} / <span data-testid="dataserver-count">${s.dataservers.length}</span></div></div>
<div class="card"><div class="k">blocks</div><div class="v" data-testid="blocks">${s.blocks}</div></div>
<div class="card"><div class="k">under-replicated</div><div class="v${s.underReplicatedBlocks > 0 ? ' alarm' : ''}" data-testid="under-replicated">${s.underReplicatedBlocks}</div></div>
<div class="card"><div class="k">stored</div><div class="v" data-testid="used">${esc(formatBytes(s.usedBytes))}</div></div>
<div class="card"><div class="k">free</div><div class="v">${esc(formatBytes(s.freeBytes))}</div></div>
</div>
<section><h2>Replication</h2><p data-testid="health">${health} · target ${s.replicas} copies per block${s.underReplicatedBlocks > 0 ? ` · <span class="muted">copies are re-made ${Math.round(x.repairDelayMs / 1000)} s after a data server dies</span>` : ''}</p>
${bar(total > 0 ? s.usedBytes / total : 0, `cluster capacity: ${formatBytes(s.usedBytes)} used of ${formatBytes(total)}`)}</section>
<section><h2>Data servers</h2>
${s.dataservers.length === 0 ? '<p class="muted">No data server has sent a heartbeat yet.</p>' : `<table><thead><tr><th>id</th><th>state</th><th>rack</th><th>blocks</th><th>capacity</th><th>free</th><th>last heartbeat</th><th>url</th></tr></thead><tbody>
${s.dataservers.map(dataserverRow).join('\n')}
</tbody></table>`}</section>
${nameserverSection(s)}${foreignSection(s)}<section><h2>Running operations <span class="muted" data-testid="work-count">(${work})</span></h2>
${work === 0 ? '<p class="muted">Nothing running.</p>' : ''}
${running.length > 0 ? `<table><thead><tr><th>kind</th><th>state</th><th>progress</th><th>note</th><th>when</th></tr></thead><tbody>${running.map(operationRow).join('\n')}</tbody></table>` : ''}
${x.busyBlocks.length > 0 ? `<p>${x.busyBlocks.map((b) => `block ${b.id}: ${esc(b.reason)}`).join(' · ')}</p>` : ''}
${finished.length > 0 ? `<h2>Recently finished</h2><table><tbody>${finished.map(operationRow).join('\n')}</tbody></table>` : ''}
</section>
</main></body></html>
`;
}

/**
 * Same guard as GET /status. Browsers cannot add a bearer token, so Basic auth with the
 * admin token (or the cluster secret) as the password works too; the user name is ignored.
 */
export function guardStatusPage(req: FastifyRequest, ctx: Pick<NameserverContext, 'config' | 'requireAdmin'>): void {
  try {
    guard(req, ctx);
  } catch (err) {
    // The challenge makes a browser ask for the token instead of showing raw JSON.
    if (err instanceof UgcfsError) throw new UgcfsError(err.code, err.message, { headers: { 'www-authenticate': 'Basic realm="ugcfs name server", charset="UTF-8"' } });
    throw err;
  }
}

function guard(req: FastifyRequest, ctx: Pick<NameserverContext, 'config' | 'requireAdmin'>): void {
  const { adminToken, clusterSecret } = ctx.config;
  const auth = req.headers.authorization;
  if (typeof auth === 'string' && /^basic /i.test(auth)) {
    const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
    const password = decoded.slice(decoded.indexOf(':') + 1);
    if ((adminToken !== '' && secretEquals(password, adminToken)) || (clusterSecret !== '' && secretEquals(password, clusterSecret))) return;
    throw new UgcfsError('UGCFS_ERR_UNAUTHORIZED', 'admin token missing or wrong');
  }
  ctx.requireAdmin(req);
}

export function register(app: FastifyInstance, ctx: NameserverContext): void {
  // auth kind 'status-page' (nameserver/server.ts) is guardStatusPage, checked before the handler
  app.get(NS_ROUTES.page, { config: { auth: 'status-page' } }, async (_req, reply) => {
    const status = await ctx.status();
    const busyBlocks = ctx.blocks
      .all()
      .map((b) => ({ id: b.id, reason: ctx.blocks.busyReason(b.id) }))
      .filter((b): b is { id: number; reason: string } => b.reason !== undefined);
    reply
      .header('content-type', 'text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'");
    return renderStatusPage(status, { busyBlocks, uptimeMs: Date.now() - ctx.startedAt, now: new Date(), repairDelayMs: ctx.config.repairDelayMs });
  });
}
