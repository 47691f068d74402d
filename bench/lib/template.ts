// The prose of docs/BENCHMARKS.md lives in markdown templates (bench/templates/), the figures
// in docs/benchmarks/results.json: a section's run stores named values, and rendering fills
// the templates with them. {{name}} is a value; {{#name}}...{{/name}} is kept when the value
// is set (not '', false or missing) and {{^name}}...{{/name}} when it is not.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './spawn.ts';

export type Value = string | number | boolean | undefined;
export type Values = Readonly<Record<string, Value>>;

/** bench/templates/<name>.md */
export function template(name: string): string {
  return readFileSync(join(ROOT, 'bench', 'templates', `${name}.md`), 'utf8');
}

const BLOCK = /\{\{([#^])([\w.-]+)\}\}([\s\S]*?)\{\{\/\2\}\}/g;

/** Fills `text`; a placeholder without a value (nor one from `fallback`) is an error naming it and `where`. */
export function fill(text: string, values: Values, where: string, fallback: (key: string) => Value = () => undefined): string {
  const set = (k: string) => values[k] !== undefined && values[k] !== '' && values[k] !== false;
  let out = text;
  for (let prev = ''; prev !== out; ) {
    prev = out;
    out = out.replace(BLOCK, (_, kind: string, k: string, inner: string) => ((kind === '#') === set(k) ? inner : ''));
  }
  return out.replace(/\{\{([\w.-]+)\}\}/g, (_, k: string) => {
    const v = values[k] ?? fallback(k);
    if (v === undefined) throw new Error(`${where}: no value for {{${k}}}`);
    return String(v);
  });
}

/** Fills bench/templates/<name>.md. */
export function render(name: string, values: Values, fallback?: (key: string) => Value): string {
  return fill(template(name), values, `bench/templates/${name}.md`, fallback);
}
