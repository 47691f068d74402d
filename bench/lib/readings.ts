// What the templates read beyond a section's stored values, computed from the stored results
// at render time so the prose never disagrees with the tables: every goal's figure
// (`goal.<id>`), the machine's cores, and each section's derived figures.
import type { Goal, SectionResult } from './results.ts';
import type { ProfileSummary } from './cpu-profile.ts';
import type { Values } from './template.ts';
import { median, medianRatio } from './stats.ts';
import { filesLabel, micros, ratio } from './markdown.ts';

/** "1.26x (goal >= 0.9x: met)", or the figure alone for a reported one. */
export function goalFigure(g: Goal | undefined): string {
  if (!g) return 'not measured';
  if (g.target.startsWith('reported')) return g.measured;
  return `${g.measured} (goal ${g.target}: ${g.met === undefined ? 'not measured' : g.met ? 'met' : 'not met'})`;
}

/** A goal a template names that this run did not produce reads "not measured". */
export const missingGoal = (key: string): string | undefined => (key.startsWith('goal.') ? 'not measured' : undefined);

function reads(s: SectionResult): Values {
  const d = (s.data as Record<string, Record<string, { rps: number }>>)[String(s.values.goalSize)];
  const hit = d?.hit?.rps;
  const miss = d?.miss?.rps;
  return { missShare: hit && miss ? `${Math.round((miss / hit) * 100)}%` : 'an unmeasured share' };
}

/** Coalesced writes against one PUT per write, at the goal's replicas with fsync off. */
function writes(s: SectionResult): Values {
  const d = (s.data as Record<string, Record<string, number[]>>)['fsync-off'];
  const r = `r${String(s.values.goalReplicas)}`;
  const x = medianRatio(d?.[r] ?? [], d?.[`${r}-put`] ?? []);
  return { coalescing: ratio(x) };
}

interface ScalePoint { files: number; uncached: { p50: number } }

function scale(s: SectionResult): Values {
  const points = Array.isArray(s.data) ? (s.data as ScalePoint[]) : [];
  const first = points[0];
  const last = points[points.length - 1];
  if (!first || !last) return {};
  return { smallest: filesLabel(first.files), largest: filesLabel(last.files), p50OffSmallest: micros(first.uncached.p50), p50OffLargest: micros(last.uncached.p50) };
}

/** Share of a profile's busy time spent in functions called one of `names` (any file). */
function share(sum: ProfileSummary | undefined, ...names: string[]): string {
  if (!sum) return '?';
  const ms = sum.functions.filter((f) => names.some((n) => f.name === n || f.name.startsWith(n + ' '))).reduce((t, f) => t + f.selfMs, 0);
  return `${((ms / sum.busyMs) * 100).toFixed(0)}%`;
}

/** The heaviest JavaScript functions of a profile (not native, not GC), as a readable list. */
function topJs(sum: ProfileSummary | undefined, n = 3): string {
  if (!sum) return '?';
  return sum.functions
    .filter((f) => f.component !== 'native' && !f.component.startsWith('('))
    .slice(0, n)
    .map((f) => `\`${f.name.split(' ')[0]}\` (${f.component}, ${(f.share * 100).toFixed(0)}%)`)
    .join(', ');
}

function profile(s: SectionResult): Values {
  const d = s.data as Record<string, ProfileSummary | undefined>;
  const parts = { dsRead: d.dsReadProfile, originHit: d.originHitProfile, originMiss: d.originMissProfile, upload: d.uploadProfile, assign: d.assignProfile };
  return {
    ...Object.fromEntries(Object.entries(parts).map(([k, p]) => [`top.${k}`, topJs(p)])),
    'share.originHit.writev': share(parts.originHit, 'writev'),
    'share.dsRead.decodeNeedle': share(parts.dsRead, 'decodeNeedle'),
    'share.dsRead.hash': share(parts.dsRead, 'Hash', 'digest'),
    'share.upload.get': share(parts.upload, '_get'),
  };
}

interface HaWriteRound { opsPerS: number; cpuUs: Record<string, number> }

/** The ha section's writes round by round: the rate ratios, and the same ratio read from CPU per write. */
function ha(s: SectionResult): Values {
  const w = (s.data as { writes?: { etcd: HaWriteRound[]; leveldb: HaWriteRound[] } }).writes;
  if (!w) return {};
  const total = (r: HaWriteRound) => Object.values(r.cpuUs).reduce((t, x) => t + x, 0);
  const pairs = w.etcd.map((e, i) => [e, w.leveldb[i]!] as const).filter(([, l]) => l !== undefined);
  const side = (r: HaWriteRound) => (r.cpuUs.nameservers ?? 0) + (r.cpuUs.etcd ?? 0);
  return {
    roundRatios: pairs.map(([e, l]) => ratio(e.opsPerS / l.opsPerS)).join(', '),
    // CPU bounds the rate on a machine where every process shares the cores: LevelDB's CPU
    // per write over etcd's, round by round, is the rate ratio CPU alone predicts.
    cpuRatio: ratio(medianRatio(pairs.map(([, l]) => total(l)), pairs.map(([e]) => total(e)))),
    nsSideEtcd: micros(median(pairs.map(([e]) => side(e)))),
    nsSideLevel: micros(median(pairs.map(([, l]) => side(l)))),
    dsEtcd: micros(median(pairs.map(([e]) => e.cpuUs.dataservers ?? Number.NaN))),
    dsLevel: micros(median(pairs.map(([, l]) => l.cpuUs.dataservers ?? Number.NaN))),
    loadStart1: s.machine.loadavgAtStart[0] ?? '?',
    loadEnd1: s.loadEnd?.[0] ?? '?',
  };
}

const DERIVED: Record<string, (s: SectionResult) => Values> = { reads, writes, scale, ha, profile };

/** Everything a section's template can name. */
export function sectionValues(s: SectionResult): Values {
  const goals = Object.fromEntries(s.goals.map((g) => [`goal.${g.id}`, goalFigure(g)]));
  return { ...s.values, cores: s.machine.cores, ...goals, ...(DERIVED[s.id]?.(s) ?? {}) };
}
