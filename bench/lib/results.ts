// Results of a bench run, kept as JSON beside the doc (docs/benchmarks/results.json) so a
// partial run (`--only reads`) replaces its own sections and keeps the others' figures.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { MachineInfo } from './machine.ts';

export interface Goal {
  /** stable within its section: the templates name a goal's figure `goal.<id>` */
  id: string;
  name: string;
  target: string;
  measured: string;
  /** undefined: not measured (part missing or skipped) */
  met?: boolean;
}

export interface SectionResult {
  id: string;
  title: string;
  measuredAt: string;
  machine: MachineInfo;
  quick: boolean;
  /** 1/5/15-minute load averages when the section ended (the machine is shared) */
  loadEnd?: number[];
  /** wall-clock seconds the section took */
  seconds?: number;
  /** the figures (and tables) its template (bench/templates/sections/<id>.md) names */
  values: Record<string, string | number | boolean>;
  goals: Goal[];
  commands: string[];
  /** raw figures for later comparison */
  data: unknown;
}

/**
 * One line printed by another engineer's bench script (bench/dataserver-*.ts, cluster-*,
 * repair-*, origin-*, migrate-*): any stdout line that is a JSON object with a string
 * `metric` and a numeric `value`, or a summary line `{"bench", "summary": true, "ratio"?}`, or
 * any line naming its `bench` (per-round lines with a `round` field are skipped).
 * Other fields are shown as details.
 */
export interface ExternalLine {
  metric: string;
  value: number;
  unit?: string;
  [k: string]: unknown;
}

export interface ResultsFile {
  sections: Record<string, SectionResult>;
}

export function loadResults(path: string): ResultsFile {
  if (!existsSync(path)) return { sections: {} };
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as ResultsFile;
  } catch {
    return { sections: {} };
  }
}

export function saveResults(path: string, r: ResultsFile): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(r, null, 2) + '\n');
}

export function parseExternalLines(stdout: string): ExternalLine[] {
  const out: ExternalLine[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (!line.startsWith('{')) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (typeof j.metric === 'string' && typeof j.value === 'number') out.push(j as ExternalLine);
      // Summary lines ({"bench","summary":true,"ratio",...}) are shown too, keyed by their ratio.
      else if (j.summary === true) {
        const { bench, summary: _s, ratio, ...rest } = j;
        out.push({ metric: `${String(bench ?? 'bench')} summary`, value: typeof ratio === 'number' ? ratio : Number.NaN, unit: typeof ratio === 'number' ? 'x' : '', ...rest });
      } else if (typeof j.bench === 'string' && j.round === undefined) {
        // Any other named result line: every field becomes a detail (per-round lines are
        // left out; their summary carries the figure).
        const { bench, ...rest } = j;
        out.push({ metric: bench, value: Number.NaN, ...rest });
      }
    } catch { /* a log line, not a result */ }
  }
  return out;
}
