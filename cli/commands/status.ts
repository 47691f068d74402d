import { loadConfig } from '../../src/config.ts';
import { CLUSTER_CLIENT_OPTIONS, clusterClientFromConfig } from '../../src/cluster-client.ts';
import { UgcfsError } from '../../src/errors.ts';
import type { ClusterStatus } from '../../src/protocol.ts';
import type { CommandModule } from '../command.ts';

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Plain, line-per-server text; a later part may dress it up, --json stays as is. */
export function formatStatus(s: ClusterStatus): string {
  const alive = s.dataservers.filter((d) => d.alive).length;
  const lines = [
    `data servers: ${alive} alive of ${s.dataservers.length}   blocks: ${s.blocks}   replicas: ${s.replicas}   under-replicated blocks: ${s.underReplicatedBlocks}`,
    `used: ${bytes(s.usedBytes)}   free: ${bytes(s.freeBytes)}`,
    '',
    `${'ID'.padEnd(16)} ${'STATE'.padEnd(6)} ${'RACK'.padEnd(8)} ${'BLOCKS'.padStart(6)} ${'USED'.padStart(10)} ${'FREE'.padStart(10)}  URL`,
  ];
  for (const d of s.dataservers) {
    const state = d.alive ? (d.draining ? 'drain' : 'alive') : 'DEAD';
    lines.push(`${d.id.padEnd(16)} ${state.padEnd(6)} ${(d.rack || '-').padEnd(8)} ${String(d.blocks).padStart(6)} ${bytes(d.usedBytes).padStart(10)} ${bytes(d.freeBytes).padStart(10)}  ${d.url}`);
  }
  for (const op of s.operations ?? []) lines.push(`operation ${op.id} ${op.kind} ${op.state} ${op.done}/${op.total}`);
  return lines.join('\n') + '\n';
}

const mod: CommandModule = {
  summary: 'cluster overview: data servers, capacity, blocks, under-replicated',
  usage: 'ugcfs status [--json] [--nameserver URL]\n\nThe name server is --nameserver or UGCFS_NAMESERVER (default http://127.0.0.1:7000); UGCFS_CLUSTER_SECRET / UGCFS_ADMIN_TOKEN authenticate.',
  async run(ctx) {
    const { config, flags, positionals } = loadConfig(CLUSTER_CLIENT_OPTIONS, { argv: ctx.argv, env: ctx.env, allowFlags: ['--json'] });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    const s = await clusterClientFromConfig(config).status();
    if (flags.has('--json')) {
      const out = {
        dataservers: s.dataservers.map((d) => ({ id: d.id, url: d.url, rack: d.rack, alive: d.alive, blocks: d.blocks, usedBytes: d.usedBytes, freeBytes: d.freeBytes })),
        underReplicatedBlocks: s.underReplicatedBlocks,
        blocks: s.blocks,
        replicas: s.replicas,
        usedBytes: s.usedBytes,
        freeBytes: s.freeBytes,
        operations: s.operations,
      };
      ctx.stdout.write(JSON.stringify(out) + '\n');
    } else {
      ctx.stdout.write(formatStatus(s));
    }
    return 0;
  },
};
export const { summary, usage, run } = mod;
