// Runs the bench scripts other parts own (bench/dataserver-*.ts, cluster-*, repair-*,
// origin-*, migrate-*) and gathers the JSON result lines they print (bench/lib/results.ts).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Section } from '../context.ts';
import { ROOT, RUN_TS, runCommand } from '../spawn.ts';
import { parseExternalLines } from '../results.ts';
import { table } from '../markdown.ts';

const PREFIXES = ['dataserver-', 'cluster-', 'repair-', 'origin-', 'migrate-'];

export const section: Section = {
  id: 'external',
  title: 'Figures from the parts\' own bench scripts',
  async run(ctx) {
    const scripts = readdirSync(join(ROOT, 'bench')).filter((f) => f.endsWith('.ts') && PREFIXES.some((p) => f.startsWith(p))).sort();
    const rows: string[][] = [];
    const commands: string[] = [];
    const data: Record<string, unknown> = {};
    for (const s of scripts) {
      // The parts' scripts run in their --quick form unless asked (--external-full): their
      // full forms alone take longer than the whole bench's 20-minute budget.
      const args = [RUN_TS, join('bench', s), ...(ctx.quick || !ctx.externalFull ? ['--quick'] : [])];
      commands.push(`node ${args.map((a) => a.replace(ROOT + '/', '')).join(' ')}`);
      ctx.log(`  running bench/${s}`);
      const started = Date.now();
      const r = await runCommand(process.execPath, args, { timeoutMs: 10 * 60_000 });
      const lines = parseExternalLines(r.stdout);
      data[s] = { code: r.code, lines, seconds: (Date.now() - started) / 1000 };
      if (r.code !== 0) rows.push([s, 'failed', `exit ${r.code}: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 120)}`, '', '']);
      for (const l of lines) {
        const { metric, value, unit, ...rest } = l;
        const details = Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`).join(', ');
        rows.push([s, metric, !Number.isFinite(value) ? '—' : Number.isInteger(value) ? value.toLocaleString('en-US') : value.toPrecision(4), unit ?? '', details]);
      }
    }
    const values = { table: scripts.length ? table(['script', 'metric', 'value', 'unit', 'details'], rows) : '' };
    return { values, goals: [], commands, data };
  },
};
