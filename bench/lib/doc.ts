// Renders docs/BENCHMARKS.md from the stored results of every section and the templates in
// bench/templates/: doc.md (the goals, a short reading of them, then how the figures are
// made), section.md (each section's heading, when it was measured, its commands) and
// sections/<id>.md (its body).
import type { ExternalLine, ResultsFile, SectionResult } from './results.ts';
import { table, goal, filesLabel } from './markdown.ts';
import type { MachineInfo } from './machine.ts';
import { fill, render, template, type Values } from './template.ts';
import { missingGoal, sectionValues } from './readings.ts';
import { RUN_OPTIONS, RUN_QUICK, SECTION_ORDER, WAIT_QUIET_MS } from './run-options.ts';

export { SECTION_ORDER };

function machineLine(m: MachineInfo): string {
  return `${m.cpu}, ${m.cores} cores, ${m.ramGiB} GiB RAM, ${m.os}, Linux ${m.kernel}; node ${m.node}, nginx ${m.nginx ?? 'absent'}, wrk ${m.wrk ?? 'absent'}, sharp ${m.sharp} (libvips ${m.vips})${m.reclaim ? `; the kernel reclaims on its own: ${m.reclaim}` : ''}`;
}

/** A section's --tls run (`<id>-tls`), for its template as `tls.<name>`: its values, when and how it was measured. */
function tlsValues(t: SectionResult | undefined): Values {
  if (!t || t.values.notMeasured) return {};
  const about = { measuredAt: t.measuredAt, quick: t.quick, loadStart: t.machine.loadavgAtStart.join(' / '), command: t.commands[0] ?? '', commands: [...new Set(t.commands)].join('\n') };
  return Object.fromEntries(Object.entries({ ...t.values, ...about }).map(([k, v]) => [`tls.${k}`, v]));
}

function renderSection(s: SectionResult, tls?: SectionResult): string {
  const body = s.values.notMeasured
    ? render('sections/not-measured', s.values)
    : fill(template(`sections/${s.id}`), { ...sectionValues(s), ...tlsValues(tls) }, `bench/templates/sections/${s.id}.md`, missingGoal);
  return render('section', {
    title: s.title,
    measuredAt: s.measuredAt,
    quick: s.quick,
    seconds: s.seconds,
    cores: s.machine.cores,
    loadStart: s.machine.loadavgAtStart.join(' / '),
    loadEnd: s.loadEnd?.join(' / ') ?? '',
    body: body.trimEnd(),
    commands: [...new Set(s.commands)].join('\n'),
  });
}

interface ScalePoint { files: number; blockBytesPerFile: number; indexBytesPerFile: number }

/** The opening's figures: the runner's defaults, and what the stored sections measured. */
function docValues(r: ResultsFile, sections: SectionResult[]): Values {
  const points = Array.isArray(r.sections.scale?.data) ? (r.sections.scale.data as ScalePoint[]) : [];
  // what the scale section locks in memory: every size's block file and index
  const locked = points.reduce((n, p) => n + p.files * (p.blockBytesPerFile + p.indexBytesPerFile), 0);
  // the shortest result line the external section stored, as an example of the format
  const lines = Object.values((r.sections.external?.data ?? {}) as Record<string, { lines?: ExternalLine[] }>).flatMap((x) => x.lines ?? []);
  const example = lines.filter((l) => Number.isFinite(l.value)).map((l) => JSON.stringify(l)).sort((a, b) => a.length - b.length)[0];
  const writes = r.sections.writes?.values;
  const goals = sections.flatMap((sec) => sec.goals.map((g) => ({ ...g, section: sec }))).filter((g) => !g.target.startsWith('reported'));
  const notMet = goals.filter((g) => g.met === false);
  return {
    // the reading: every goal's figure as `g.<section>.<id>`, and how many goals are met
    ...Object.fromEntries(sections.flatMap((sec) => sec.goals.map((g) => [`g.${sec.id}.${g.id}`, g.measured]))),
    met: goals.filter((g) => g.met === true).length,
    targeted: goals.length,
    notMet: notMet.map((g) => `${g.name} (${g.measured}, goal ${g.target})`).join('; '),
    copies: writes?.goalReplicas ?? '—',
    readSize: r.sections.reads?.values.goalSize ?? '—',
    smallest: points[0] ? filesLabel(points[0].files) : '—',
    largest: points.length ? filesLabel(points[points.length - 1]!.files) : '—',
    cores: sections[0]?.machine.cores ?? '—',
    runs: RUN_OPTIONS.runs.default,
    duration: RUN_OPTIONS.duration.default,
    quickRuns: RUN_QUICK.runs,
    quickDuration: RUN_QUICK.duration,
    waitQuietMin: WAIT_QUIET_MS / 60_000,
    minFreeGib: RUN_OPTIONS.minFreeGib.default,
    minutes: Math.round(sections.reduce((t, s) => t + (s.seconds ?? 0), 0) / 60),
    lockedGb: locked ? (Math.ceil(locked / 1e8) / 10).toFixed(1) : '—',
    sectionList: SECTION_ORDER.map((id) => `\`${id}\``).join(', '),
    readSizes: Object.keys((r.sections.reads?.data ?? {}) as object).join(', ') || '—',
    writeSizeKb: writes?.sizeKb ?? '—',
    writeReplicas: writes?.replicaList ?? '—',
    scaleSizes: points.map((p) => filesLabel(p.files)).join(' / ') || '—',
    exampleLine: example ?? '—',
  };
}

export function renderDoc(results: ResultsFile): string {
  const sections = SECTION_ORDER.map((id) => results.sections[id]).filter((s): s is SectionResult => s !== undefined);
  const machines = new Map<string, string[]>();
  for (const s of sections) {
    const line = machineLine(s.machine);
    machines.set(line, [...(machines.get(line) ?? []), `${s.id} (${s.measuredAt}${s.quick ? ', --quick' : ''})`]);
  }
  // every goal with the command that measured it (the section's run)
  const goals = sections.flatMap((s) => s.goals.map((g) => [g.name, g.target, g.measured, g.target.startsWith('reported') ? 'reported' : goal(g.met), s.commands[0] ? `\`${s.commands[0]}\`` : '']));
  return render('doc', {
    ...docValues(results, sections),
    machines: [...machines].map(([line, ids]) => `- ${line} — sections: ${ids.join(', ')}`).join('\n'),
    goals: goals.length ? table(['goal', 'target', 'measured', 'status', 'command'], goals) : '',
    sections: sections.map((s) => renderSection(s, results.sections[`${s.id}-tls`]).trimEnd()).join('\n\n'),
    missing: SECTION_ORDER.filter((id) => !results.sections[id]).join(', '),
  }, (key) => (key.startsWith('g.') ? 'not measured' : undefined));
}
