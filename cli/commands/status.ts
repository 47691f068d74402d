import { loadConfig } from '../../src/base/config.ts';
import { CLUSTER_CLIENT_OPTIONS, nameserverClientFromConfig } from '../../src/clients/cluster-options.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import type { ClusterStatus, NameserverStatus } from '../../src/wire/protocol.ts';
import type { CommandModule } from '../command.ts';
import { bar, formatBytes } from '../progress.ts';

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function pct(share: number): string {
  return `${(Number.isFinite(share) ? share * 100 : 0).toFixed(1)}%`;
}

/** One line per listed name server: URL, role (`-` when unknown), epoch, up or down. */
export function formatNameservers(list: readonly NameserverStatus[]): string[] {
  const width = Math.max(0, ...list.map((n) => n.url.length));
  return list.map((n) => `  ${n.url.padEnd(width)}  ${(n.role ?? '-').padEnd(7)}  epoch ${String(n.epoch).padEnd(6)}  ${n.alive ? 'up' : 'DOWN'}`);
}

/**
 * The human overview: the name servers, cluster totals with a disk bar, one row per data server (its USED bar
 * is scaled to the fullest server, so balance shows at a glance), racks, under-replicated
 * blocks and recent operations. --json is the stable shape; this text may change.
 */
export function formatStatus(s: ClusterStatus, now = Date.now(), nameservers: readonly NameserverStatus[] = []): string {
  const alive = s.dataservers.filter((d) => d.alive);
  const total = s.usedBytes + s.freeBytes;
  const lines = [
    ...(s.cluster !== undefined ? [`cluster: ${s.cluster}`] : []),
    ...(nameservers.length > 0 ? [`name servers: ${nameservers.filter((n) => n.alive).length} up of ${nameservers.length}`, ...formatNameservers(nameservers)] : []),
    `data servers: ${alive.length} alive of ${s.dataservers.length}   blocks: ${s.blocks}   replicas: ${s.replicas}   under-replicated blocks: ${s.underReplicatedBlocks}`,
    `used ${formatBytes(s.usedBytes)} of ${formatBytes(total)}  ${bar(total > 0 ? s.usedBytes / total : 0, 20)} ${pct(total > 0 ? s.usedBytes / total : 0)}   free ${formatBytes(s.freeBytes)}`,
    '',
    `${'ID'.padEnd(14)} ${'RACK'.padEnd(8)} ${'STATE'.padEnd(8)} ${'BLOCKS'.padStart(6)} ${'USED'.padStart(10)} ${'FREE'.padStart(10)} ${'DISK'.padStart(6)}  ${'USED (vs fullest)'.padEnd(22)} URL`,
  ];
  const fullest = Math.max(1, ...alive.map((d) => d.usedBytes));
  for (const d of s.dataservers) {
    const state = !d.alive ? 'DEAD' : d.draining ? 'draining' : 'alive';
    const cap = d.usedBytes + d.freeBytes;
    const seen = (!d.alive && d.lastSeenMs !== undefined ? `  (last seen ${ago(d.lastSeenMs)})` : '') + (d.quarantine ? `  quarantine: ${d.quarantine.files} files, ${formatBytes(d.quarantine.bytes)}` : '');
    lines.push(
      `${d.id.padEnd(14)} ${(d.rack || '-').padEnd(8)} ${state.padEnd(8)} ${String(d.blocks).padStart(6)} ${formatBytes(d.usedBytes).padStart(10)} ${formatBytes(d.freeBytes).padStart(10)} ${pct(cap > 0 ? d.usedBytes / cap : 0).padStart(6)}  ${bar(d.alive ? d.usedBytes / fullest : 0, 20)}  ${d.url}${seen}`,
    );
  }
  const foreign = s.foreignDataservers ?? [];
  if (foreign.length > 0) {
    lines.push('', `FOREIGN data servers (${foreign.length}): of another cluster, or holding blocks this name server never knew; refused, nothing they report is used, their blocks are kept:`);
    for (const d of foreign) {
      lines.push(`  ${d.id.padEnd(14)} ${(d.rack || '-').padEnd(8)} cluster ${d.cluster ?? '(none)'}  ${d.blocks} blocks  ${formatBytes(d.usedBytes)}  seen ${ago(d.lastSeenMs)}  ${d.url}`);
      lines.push(`      ${d.reason}`);
    }
  }
  const racks = new Map<string, { servers: number; alive: number; used: number }>();
  for (const d of s.dataservers) {
    const r = racks.get(d.rack || '-') ?? { servers: 0, alive: 0, used: 0 };
    r.servers++;
    if (d.alive) {
      r.alive++;
      r.used += d.usedBytes;
    }
    racks.set(d.rack || '-', r);
  }
  lines.push('', `racks: ${[...racks].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, r]) => `${name} (${r.alive}/${r.servers} alive, ${formatBytes(r.used)})`).join(', ')}`);
  if (s.underReplicatedBlocks > 0) lines.push(`under-replicated blocks: ${s.underReplicatedBlocks} (re-replicated automatically after the repair delay)`);
  const ops = s.operations ?? [];
  if (ops.length > 0) {
    lines.push('', 'operations:');
    for (const op of ops) {
      const share = op.total > 0 ? op.done / op.total : op.state === 'done' ? 1 : 0;
      const when = op.state === 'running' ? `started ${ago(now - op.startedAt)}` : `ended ${ago(now - (op.finishedAt ?? op.startedAt))}`;
      lines.push(`  ${op.id} ${op.kind.padEnd(9)} ${op.state.padEnd(11)} ${bar(share, 20)} ${op.done}/${op.total}  ${formatBytes(op.bytesDone)}  ${when}`);
      if (op.message && op.state !== 'running') lines.push(`      ${op.message}`);
    }
  }
  return lines.join('\n') + '\n';
}

const mod: CommandModule = {
  summary: 'cluster overview: data servers, capacity, blocks, under-replicated',
  usage:
    'ugcfs status [--json] [--nameserver URL[,URL...]]\n\nThe name servers are --nameserver or UGCFS_NAMESERVER (default http://127.0.0.1:7000), a comma-separated list for a high-availability group: the status comes from whichever answers, and each listed one is shown with its role (leader, standby), epoch and whether it is up. UGCFS_CLUSTER_SECRET / UGCFS_ADMIN_TOKEN authenticate.',
  async run(ctx) {
    const { config, flags, positionals } = loadConfig(CLUSTER_CLIENT_OPTIONS, { argv: ctx.argv, env: ctx.env, allowFlags: ['--json'] });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    const ns = nameserverClientFromConfig(config);
    const [s, nameservers] = await Promise.all([ns.status(), ns.nameservers()]);
    if (flags.has('--json')) {
      const out = {
        ...(s.cluster !== undefined ? { cluster: s.cluster } : {}),
        nameservers,
        dataservers: s.dataservers.map((d) => ({ id: d.id, url: d.url, rack: d.rack, alive: d.alive, blocks: d.blocks, usedBytes: d.usedBytes, freeBytes: d.freeBytes, ...(d.quarantine ? { quarantine: d.quarantine } : {}) })),
        foreignDataservers: s.foreignDataservers ?? [],
        underReplicatedBlocks: s.underReplicatedBlocks,
        blocks: s.blocks,
        replicas: s.replicas,
        usedBytes: s.usedBytes,
        freeBytes: s.freeBytes,
        operations: s.operations,
      };
      ctx.stdout.write(JSON.stringify(out) + '\n');
    } else {
      ctx.stdout.write(formatStatus(s, Date.now(), nameservers));
    }
    return 0;
  },
};
export const { summary, usage, run } = mod;
