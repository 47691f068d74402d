// High availability of the name server: a group of name servers sharing their state in
// three real etcd members, every process real, on this machine.
//   1. Failover: under continuous uploads through an origin, SIGKILL the leading name
//      server; the outage is the longest time without an acknowledged upload from the kill
//      on (an origin batches its assigns, so uploads may go on for a while on fids the dead
//      leader handed out; test/ha/leader-kill.test.ts measures it the same way), and the
//      election is the kill to the standby's GET /leader saying "leader". At each
//      --ha-lease-ms value, --ha-kills times.
//   2. Replicated writes/s of a group on etcd against one name server on its embedded
//      LevelDB, both clusters up at once, measured round by round, with the CPU each part
//      spent per write (what explains the ratio).
//   3. What the name server's records weigh in etcd: database bytes per block record and
//      per legacy path (the method of nameserver/metadata-store/README.md, "What it costs
//      in etcd", moved here from a skipped test).
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { NAMESERVER_OPTIONS } from '../../../nameserver/config.ts';
import { etcdUsable, etcdVersion, startEtcd, ETCD_BIN, type EtcdCluster } from '../../../test/helpers/etcd.ts';
import { waitFor } from '../../../test/helpers/proc.ts';
import type { Section, BenchContext } from '../context.ts';
import type { Goal } from '../results.ts';
import { rolesAvailable, originUpload } from '../cluster.ts';
import { startGroup, type Group } from '../ha-cluster.ts';
import { runLoad, checkLoad, type LoadResult } from '../load.ts';
import { median, medianRatio, spread } from '../stats.ts';
import { table, num, ratio, micros } from '../markdown.ts';
import { processCpuMs } from '../process-cpu.ts';
import { etcdBytes } from '../etcd-size.ts';

const DATASERVERS = 3;
const REPLICAS = 2;
const NAMESERVERS = 2;
const UPLOADERS = 4;
const SIZE = 20 * 1024;
const CONCURRENCY = 16;
const WARMUP_S = 1;
const DEFAULT_LEASE_MS = NAMESERVER_OPTIONS.leaseMs.default;
const KILLS_DEFAULT = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
/** A small PNG of random pixels: every upload is different bytes, as in test/ha/leader-kill.test.ts. */
const png = () => sharp(randomBytes(8 * 8 * 3), { raw: { width: 8, height: 8, channels: 3 } }).png().toBuffer();

/** pids of the processes whose command line contains `needle` (the etcd members, by their data dirs). */
function pidsWith(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(needle)) out.push(Number(d));
    } catch { /* gone */ }
  }
  return out;
}

interface KillRound { outageMs: number; electionMs: number; firstNewMs: number }

/** Part 1: SIGKILLs of the leader under continuous origin uploads, at one --lease-ms. */
async function failover(ctx: BenchContext, etcd: EtcdCluster, leaseMs: number, kills: number, commands: string[]): Promise<{ rounds: KillRound[]; uploads: number; errors: number; firstError?: string }> {
  const g = await startGroup({
    dir: join(ctx.work, `failover-${leaseMs}`),
    etcd: etcd.endpoints,
    etcdPrefix: `/ugcfs/bench-failover-${leaseMs}`,
    nameservers: NAMESERVERS,
    leaseMs: leaseMs === DEFAULT_LEASE_MS ? undefined : leaseMs,
    dataservers: DATASERVERS,
    replicas: REPLICAS,
    origin: true,
  });
  commands.push(`# failover, --lease-ms ${leaseMs}${leaseMs === DEFAULT_LEASE_MS ? ' (the default, not passed)' : ''}`, ...g.commands);
  /** [sent, acknowledged] of every upload */
  const acks: Array<[number, number]> = [];
  let errors = 0;
  let firstError: string | undefined;
  let stop = false;
  const uploader = async () => {
    while (!stop) {
      const body = await png();
      const sent = Date.now();
      try {
        await originUpload(g.origin!.url, body, 'image/png');
        acks.push([sent, Date.now()]);
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message.slice(0, 160);
        await sleep(50);
      }
    }
  };
  const loops = Array.from({ length: UPLOADERS }, uploader);
  const rounds: KillRound[] = [];
  try {
    await waitFor('uploads flowing', () => acks.length >= 20, 60_000, 50);
    for (let k = 0; k < kills; k++) {
      const li = await g.leaderIndex();
      const other = (li + 1) % NAMESERVERS;
      const before = acks.length;
      const t0 = Date.now();
      await g.killNameserver(li);
      const elected = await waitFor('the standby to lead', async () => ((await g.leaderOf(other, 500))?.role === 'leader' ? Date.now() : undefined), 60_000, 20);
      // Uploads sent once the new leader leads must be acknowledged: then the outage is over.
      await waitFor('uploads acknowledged under the new leader', () => acks.filter(([sent]) => sent > elected).length >= 5, 60_000, 20);
      const after = acks.slice(before).map(([, at]) => at).filter((at) => at > t0);
      const times = [t0, ...after].sort((a, b) => a - b);
      const outageMs = Math.max(...times.slice(1).map((at, i) => at - times[i]!));
      const firstNewMs = Math.min(...acks.slice(before).filter(([sent]) => sent > elected).map(([, at]) => at)) - t0;
      rounds.push({ outageMs, electionMs: elected - t0, firstNewMs });
      ctx.log(`  ha lease ${leaseMs} ms kill ${k + 1}: no acknowledged upload for ${outageMs} ms; new leader after ${elected - t0} ms`);
      // The killed one comes back as a standby: the group is two again before the next kill.
      await g.restartNameserver(li);
      await waitFor('the restarted name server standing by', async () => (await g.leaderOf(li))?.role === 'standby', 60_000, 50);
      const n = acks.length;
      await waitFor('more uploads', () => acks.length >= n + 10, 60_000, 20);
    }
  } finally {
    stop = true;
    await Promise.all(loops);
    await g.stop();
  }
  return { rounds, uploads: acks.length, errors, firstError };
}

interface WriteRound { load: LoadResult; cpuUs: Record<'nameservers' | 'dataservers' | 'etcd' | 'client', number> }

/** Part 2: replicated writes, a group on etcd against one name server on LevelDB, round by round. */
async function writes(ctx: BenchContext, etcd: EtcdCluster, commands: string[], notes: string[]) {
  const common = { dataservers: DATASERVERS, replicas: REPLICAS, dataserverArgs: ['--fsync=false'] };
  const level = await startGroup({ ...common, dir: join(ctx.work, 'writes-leveldb') });
  let ha: Group | undefined;
  try {
    ha = await startGroup({ ...common, dir: join(ctx.work, 'writes-etcd'), etcd: etcd.endpoints, etcdPrefix: '/ugcfs/bench-writes', nameservers: NAMESERVERS });
    commands.push('# writes, one name server on LevelDB', ...level.commands, `# writes, ${NAMESERVERS} name servers on etcd (${etcd.members.length} members)`, ...ha.commands);
    const etcdPids = etcd.members.flatMap((m) => pidsWith(m.dataDir));
    if (etcdPids.length !== etcd.members.length) notes.push(`Found ${etcdPids.length} of ${etcd.members.length} etcd processes: their CPU column is partial.`);
    const body = randomBytes(SIZE);
    const kinds = { leveldb: level, etcd: ha };
    const runs: Record<keyof typeof kinds, WriteRound[]> = { leveldb: [], etcd: [] };
    for (let round = 0; round <= ctx.runs; round++) {
      // Alternate which goes first, so a drift of the background load favours neither.
      const order = (round % 2 ? ['etcd', 'leveldb'] : ['leveldb', 'etcd']) as (keyof typeof kinds)[];
      for (const id of order) {
        const g = kinds[id];
        const pids = {
          nameservers: g.nameservers.map((n) => n!.pid),
          dataservers: g.dataservers.map((d) => d.pid),
          etcd: id === 'etcd' ? etcdPids : [],
        };
        const cpu = () => ({ ...Object.fromEntries(Object.entries(pids).map(([k, ps]) => [k, ps.reduce((t, p) => t + processCpuMs(p), 0)])), client: (process.cpuUsage().user + process.cpuUsage().system) / 1000 }) as Record<keyof WriteRound['cpuUs'], number>;
        const c0 = cpu();
        const raw = await runLoad({ concurrency: CONCURRENCY, durationS: round === 0 ? WARMUP_S : ctx.durationS, op: async () => { await g.client.write(body, { mime: 'application/octet-stream', replicas: REPLICAS }); return SIZE; } });
        const c1 = cpu();
        if (round === 0) {
          if (raw.errors) notes.push(`Warm-up of ${id}: ${raw.errors} of ${raw.ops + raw.errors} writes failed (first: ${raw.firstError?.slice(0, 160)}).`);
          continue;
        }
        const load = checkLoad(raw, `writes (${id})`);
        const cpuUs = Object.fromEntries(Object.keys(c0).map((k) => [k, ((c1[k as keyof typeof c1] - c0[k as keyof typeof c0]) * 1000) / load.ops])) as WriteRound['cpuUs'];
        runs[id].push({ load, cpuUs });
        ctx.log(`  ha writes ${id} round ${round}: ${Math.round(load.opsPerS)}/s`);
      }
    }
    return runs;
  } finally {
    await ha?.stop();
    await level.stop();
  }
}

const millions = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(1)} million` : num(x));

export const section: Section = {
  id: 'ha',
  title: 'High availability: name-server failover and the state in etcd',
  async run(ctx: BenchContext) {
    const why = etcdUsable();
    const roles = rolesAvailable();
    if (why) return { values: { notMeasured: `etcd: ${why}` }, goals: [], commands: [], data: {} };
    if (!roles.nameserver || !roles.dataserver || !roles.origin) return { values: { notMeasured: 'needs the name server, data servers and the origin' }, goals: [], commands: [], data: {} };
    const kills = ctx.ha?.kills ?? KILLS_DEFAULT;
    const leases = ctx.ha?.leaseMs ?? [DEFAULT_LEASE_MS];
    const records = ctx.ha?.etcdRecords ?? 100_000;
    const commands: string[] = [];
    const notes: string[] = [];
    const goals: Goal[] = [];
    const data: Record<string, unknown> = {};
    const etcd = await startEtcd({ members: 3 });
    commands.push(`${ETCD_BIN} (etcd ${etcdVersion() ?? '?'}) x${etcd.members.length} members on loopback, Debian's defaults but --logger zap --log-level warn (test/helpers/etcd.ts startEtcd({ members: 3 }))`);

    const failRows: (string | number)[][] = [];
    let writeRows: (string | number)[][] = [];
    let cpuRows: (string | number)[][] = [];
    let cpu: Record<string, string> = {};
    let vs = Number.NaN;
    try {
      // 1. failover
      for (const leaseMs of leases) {
        const r = await failover(ctx, etcd, leaseMs, kills, commands);
        data[`failover-${leaseMs}`] = r;
        const out = r.rounds.map((x) => x.outageMs);
        const el = r.rounds.map((x) => x.electionMs);
        const first = r.rounds.map((x) => x.firstNewMs);
        failRows.push([`${leaseMs}${leaseMs === DEFAULT_LEASE_MS ? ' (default)' : ''}`, r.rounds.length, secs(median(out)), secs(Math.max(...out)), secs(median(el)), secs(Math.max(...el)), secs(median(first)), `${num(r.uploads)} / ${r.errors}`]);
        const max = Math.max(...out);
        goals.push({ id: `failover-${leaseMs}`, name: `upload outage after a SIGKILL of the leading name server, --lease-ms ${leaseMs} (max of ${r.rounds.length} kills)`, target: '<= 10 s', measured: `${secs(max)} (median ${secs(median(out))})`, met: max <= 10_000 });
        if (r.errors) notes.push(`At --lease-ms ${leaseMs}, ${r.errors} uploads failed (first: ${r.firstError}); the uploaders retry after 50 ms.`);
      }

      // 2. writes on etcd against LevelDB
      const w = await writes(ctx, etcd, commands, notes);
      data.writes = Object.fromEntries(Object.entries(w).map(([k, rs]) => [k, rs.map((x) => ({ opsPerS: x.load.opsPerS, p50: x.load.p50, p99: x.load.p99, cpuUs: x.cpuUs }))]));
      vs = medianRatio(w.etcd.map((x) => x.load.opsPerS), w.leveldb.map((x) => x.load.opsPerS));
      const label = { leveldb: '1 name server, embedded LevelDB (`--data`)', etcd: `${NAMESERVERS} name servers on etcd (${etcd.members.length} members)` };
      writeRows = (['leveldb', 'etcd'] as const).map((k) => {
        const rs = w[k].map((x) => x.load);
        return [label[k], num(median(rs.map((x) => x.opsPerS))), micros(median(rs.map((x) => x.p50))), micros(median(rs.map((x) => x.p99))), k === 'etcd' ? ratio(vs) : '1.00x', `${Math.round(spread(rs.map((x) => x.opsPerS)) * 100)}%`];
      });
      const parts = ['nameservers', 'etcd', 'dataservers', 'client'] as const;
      cpuRows = (['leveldb', 'etcd'] as const).map((k) => {
        const cells = parts.map((p) => median(w[k].map((x) => x.cpuUs[p])));
        return [label[k], ...cells.map((c) => micros(c)), micros(cells.reduce((t, c) => t + c, 0))];
      });
      const cpuMed = (k: 'leveldb' | 'etcd', p: (typeof parts)[number]) => median(w[k].map((x) => x.cpuUs[p]));
      const total = (k: 'leveldb' | 'etcd') => parts.reduce((t, p) => t + cpuMed(k, p), 0);
      Object.assign(data, { cpuTotalUs: { leveldb: total('leveldb'), etcd: total('etcd') } });
      goals.push({ id: 'etcd-leveldb', name: `replicated writes (replicas ${REPLICAS}, fsync off), ${NAMESERVERS} name servers on etcd vs 1 on LevelDB`, target: '>= 0.8x', measured: ratio(vs), met: Number.isFinite(vs) ? vs >= 0.8 : undefined });
      cpu = {
        cpuEtcdExtra: micros(total('etcd') - total('leveldb')),
        cpuNsLevel: micros(cpuMed('leveldb', 'nameservers')),
        cpuNsEtcd: micros(cpuMed('etcd', 'nameservers')),
        cpuEtcd: micros(cpuMed('etcd', 'etcd')),
        cpuTotalLevel: micros(total('leveldb')),
        cpuTotalEtcd: micros(total('etcd')),
      };
    } finally {
      await etcd.stop();
    }

    // 3. etcd bytes per record
    const size = await etcdBytes(records);
    data.etcdSize = size;
    commands.push(`# etcd bytes per record: one new member (test/helpers/etcd.ts startEtcd()), ${records} records of each kind written through EtcdMetadataStore in batches of 128, compacted and defragmented before and after each kind`);
    const sizeRows = [
      ['block (`BlockRecord`: replication 2, two replicas)', num(size.block.keyBytes), num(size.block.valueBytes), `**${size.block.dbBytesPerRecord}**`, num(size.block.rssBytesPerRecord), millions(size.block.fit2GiB), millions(size.block.fit8GiB)],
      ['legacy path (`LegacyRecord`, a 60-byte path)', num(size.legacy.keyBytes), num(size.legacy.valueBytes), `**${size.legacy.dbBytesPerRecord}**`, num(size.legacy.rssBytesPerRecord), millions(size.legacy.fit2GiB), millions(size.legacy.fit8GiB)],
    ];
    goals.push({ id: 'etcd-block', name: 'etcd database bytes per block record', target: 'reported', measured: `${size.block.dbBytesPerRecord} B` });
    goals.push({ id: 'etcd-legacy', name: 'etcd database bytes per legacy path', target: 'reported', measured: `${size.legacy.dbBytesPerRecord} B` });
    if (!size.dbSizeMetricMatchesStatus) notes.push('The `etcd_mvcc_db_total_size_in_bytes` metric differed from `/v3/maintenance/status` dbSize at the end.');

    const values = {
      dataservers: DATASERVERS,
      replicas: REPLICAS,
      nameservers: NAMESERVERS,
      etcdMembers: 3,
      etcdVersion: etcdVersion() ?? '?',
      uploaders: UPLOADERS,
      kills,
      leaseList: leases.join(' and '),
      defaultLeaseMs: DEFAULT_LEASE_MS,
      failTable: table(['--lease-ms', 'kills', 'outage median', 'outage max', 'election median', 'election max', 'first new upload acked (median)', 'uploads / failed'], failRows),
      sizeKb: SIZE / 1024,
      concurrency: CONCURRENCY,
      durationS: ctx.durationS,
      runs: ctx.runs,
      warmupS: WARMUP_S,
      writeTable: table(['cluster', 'writes/s', 'p50', 'p99', 'vs LevelDB', 'spread'], writeRows),
      cpuTable: table(['cluster', 'name servers', 'etcd', 'data servers', 'client (bench process)', 'total'], cpuRows),
      ...cpu,
      records,
      sizeTable: table(['record', 'key bytes', 'JSON bytes', 'etcd db bytes per record', 'etcd RSS bytes per record', 'in 2 GiB', 'in 8 GiB'], sizeRows),
      sizeSeconds: Math.round(size.seconds),
      notes: notes.join('\n'),
    };
    return { values, goals, commands, data };
  },
};
