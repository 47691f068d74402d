// Renders docs/BENCHMARKS.md from the stored results of every section.
import type { ResultsFile, SectionResult } from './results.ts';
import { table, goal } from './markdown.ts';
import type { MachineInfo } from './machine.ts';
import { renderAnalysis } from './analysis.ts';

export const SECTION_ORDER = ['reads', 'writes', 'images', 'scale', 'recovery', 'profile', 'external'];

function machineLine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.os}, Linux ${m.kernel}; node ${m.node}, nginx ${m.nginx ?? 'absent'}, wrk ${m.wrk ?? 'absent'}, sharp ${m.sharp} (libvips ${m.vips})${m.reclaim ? `; the kernel reclaims on its own: ${m.reclaim}` : ''}`;
}

export function renderDoc(results: ResultsFile, intro: string): string {
  const sections = SECTION_ORDER.map((id) => results.sections[id]).filter((s): s is SectionResult => s !== undefined);
  const out: string[] = [intro.trimEnd(), ''];
  const machines = new Map<string, string[]>();
  for (const s of sections) {
    const line = machineLine(s.machine);
    machines.set(line, [...(machines.get(line) ?? []), `${s.id} (${s.measuredAt}${s.quick ? ', --quick' : ''})`]);
  }
  out.push('## Machine and versions', '');
  for (const [line, ids] of machines) out.push(`- ${line} — sections: ${ids.join(', ')}`);
  out.push('');
  const goals = sections.flatMap((s) => s.goals.map((g) => ({ ...g, section: s.id })));
  if (goals.length) {
    out.push('## Goals', '', table(['goal', 'target', 'measured', 'status', 'section'], goals.map((g) => [g.name, g.target, g.measured, g.target.startsWith('reported') ? 'reported' : goal(g.met), g.section])), '');
  }
  out.push(renderAnalysis(results));
  for (const s of sections) {
    const load = `load average (1/5/15 min, ${s.machine.cores} cores) ${s.machine.loadavgAtStart.join(' / ')} at the start${s.loadEnd ? `, ${s.loadEnd.join(' / ')} at the end` : ''}`;
    const when = `Measured ${s.measuredAt}${s.quick ? ' with `--quick` (fewer, shorter runs)' : ''}${s.seconds !== undefined ? ` in ${s.seconds} s` : ''}; ${load}.`;
    out.push(`## ${s.title}`, '', when, '', s.markdown.trimEnd(), '');
    if (s.commands.length) {
      out.push('<details><summary>Exact commands</summary>', '', '```', ...[...new Set(s.commands)], '```', '', '</details>', '');
    }
  }
  const missing = SECTION_ORDER.filter((id) => !results.sections[id]);
  if (missing.length) out.push(`Sections not measured yet: ${missing.join(', ')}.`, '');
  return out.join('\n');
}
