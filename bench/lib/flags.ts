// The bench scripts' command-line flags, declared once per script (kind, default, range,
// help) and checked before anything starts. Unchecked, `--block-mib abc` became NaN and
// surfaced minutes later as a data server refusing `--block-size NaN`: an error naming an
// option the user never typed. Here a bad value is one sentence naming the flag as typed,
// a usage line, and exit code 2.
import { basename, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { flagName, parseSize } from '../../src/config.ts';

interface Kinds {
  /** a whole number */
  int: number;
  number: number;
  /** bytes: a plain number or 64k, 256M, 1G (src/config.ts parseSize, as the servers read sizes) */
  size: number;
  string: string;
  bool: boolean;
  /** comma-separated whole numbers: one run per value (--replicas 1,2,3) */
  ints: readonly number[];
  /** comma-separated words */
  list: readonly string[];
}
type Kind = keyof Kinds;

interface SpecOf<K extends Kind> {
  kind: K;
  help: string;
  /** none: the flag is undefined when not given (the script picks, e.g. a library's own default) */
  default?: Kinds[K];
  /** the default under --quick, for scripts that have it */
  quick?: Kinds[K];
  required?: boolean;
  /** for numbers, sizes and each item of ints */
  min?: number;
  max?: number;
  /** for string and each item of list */
  choices?: readonly string[];
  /** what the usage line shows for the value (N, DIR, 1,2,3); defaults by kind */
  arg?: string;
}
export type FlagSpec = { [K in Kind]: SpecOf<K> }[Kind];
/** Keys are camelCase; the flag is its kebab-case form (`blockMib` is --block-mib), as in src/config.ts. */
export type FlagTable = Record<string, FlagSpec>;

type Chosen<S, Else> = S extends { choices: readonly (infer C extends string)[] } ? C : Else;
type ValueOf<S extends FlagSpec> = S['kind'] extends 'bool'
  ? boolean
  :
      | (S['kind'] extends 'string' ? Chosen<S, string> : S['kind'] extends 'list' ? readonly Chosen<S, string>[] : Kinds[S['kind']])
      | (S extends { default: unknown } | { required: true } ? never : undefined);
export type FlagValues<T extends FlagTable> = { readonly [N in keyof T]: ValueOf<T[N]> };

export interface ScriptInfo<C extends string> {
  /** the prefix of every message; the script's file name by default */
  name: string;
  /** how the script is started, for the usage line */
  run: string;
  /** a leading word the script requires, one of these (scale-generate's fill|reopen) */
  commands?: readonly C[];
}

/** A bad command line; the message is the sentence shown to the user. */
export class FlagError extends Error {}

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** name and usage prefix of a script from its import.meta.url: bench/x.ts is `node bin/run-ts.mjs bench/x.ts`. */
export function scriptInfo(moduleUrl: string): ScriptInfo<never> {
  const path = fileURLToPath(moduleUrl);
  return { name: basename(path).replace(/\.ts$/, ''), run: `node bin/run-ts.mjs ${relative(ROOT, path)}` };
}

function range(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return ` from ${min} to ${max}`;
  if (min !== undefined) return ` >= ${min}`;
  return max !== undefined ? ` <= ${max}` : '';
}

/** ': what it takes', or '' for a free-form string. */
const takes = (s: FlagSpec) => (expected(s) ? `: ${expected(s)}` : '');

function expected(s: FlagSpec): string {
  const r = range(s.min, s.max);
  switch (s.kind) {
    case 'int': return `a whole number${r}`;
    case 'number': return `a number${r}`;
    case 'size': return `a size in bytes${r} (a number, or with a unit: 64k, 256M, 1G)`;
    case 'ints': return `a comma-separated list of whole numbers${r}`;
    case 'list': return s.choices ? `a comma-separated list of ${s.choices.join(', ')}` : 'a comma-separated list';
    case 'string': return s.choices ? `one of ${s.choices.join(', ')}` : '';
    case 'bool': return 'given alone (or =true / =false)';
  }
}

// Number('') is 0, and an empty value is a mistake, not a zero.
const toNumber = (text: string) => (text.trim() === '' ? Number.NaN : Number(text));

function coerce(s: FlagSpec, text: string): unknown {
  const inRange = (n: number) => (s.min === undefined || n >= s.min) && (s.max === undefined || n <= s.max);
  const items = () => text.split(',').map((x) => x.trim()).filter(Boolean);
  switch (s.kind) {
    case 'int': {
      const n = toNumber(text);
      return Number.isSafeInteger(n) && inRange(n) ? n : undefined;
    }
    case 'number': {
      const n = toNumber(text);
      return Number.isFinite(n) && inRange(n) ? n : undefined;
    }
    case 'size': {
      const plain = toNumber(text);
      const n = Number.isNaN(plain) ? parseSize(text) : plain;
      return Number.isSafeInteger(n) && inRange(n) ? n : undefined;
    }
    case 'ints': {
      const ns = items().map(toNumber);
      return ns.length > 0 && ns.every((n) => Number.isSafeInteger(n) && inRange(n)) ? ns : undefined;
    }
    case 'list': {
      const ws = items();
      return ws.length > 0 && ws.every((w) => !s.choices || s.choices.includes(w)) ? ws : undefined;
    }
    case 'string':
      return !s.choices || s.choices.includes(text) ? text : undefined;
    case 'bool': {
      const w = text.toLowerCase();
      return ['true', 'on', 'yes', '1'].includes(w) ? true : ['false', 'off', 'no', '0'].includes(w) ? false : undefined;
    }
  }
}

/** Reads argv against the table; throws FlagError with the sentence to show. */
export function readFlags<const T extends FlagTable, const C extends string = never>(
  table: T,
  argv: readonly string[],
  commands?: readonly C[],
): FlagValues<T> & { readonly command: C } {
  const byFlag = new Map(Object.keys(table).map((k) => [flagName(k), k]));
  const options = Object.fromEntries(Object.entries(table).map(([k, s]) => [flagName(k).slice(2), { type: s.kind === 'bool' ? ('boolean' as const) : ('string' as const) }]));
  // strict: false hands back every token, so the messages below are ours and name the flag as typed.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const given = new Map<string, unknown>();
  const words: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') words.push(t.value);
    if (t.kind !== 'option') continue;
    const key = t.rawName.startsWith('--') ? byFlag.get(t.rawName) : undefined;
    if (key === undefined) throw new FlagError(`unknown flag ${t.rawName}`);
    const spec = table[key]!;
    if (spec.kind === 'bool' && t.value === undefined) {
      given.set(key, true);
      continue;
    }
    // util.parseArgs takes the next word as the value even when it is one of our flags;
    // other words starting with -- can be values (--origin-args "--workers 2").
    if (t.value === undefined || (!t.inlineValue && (byFlag.has(t.value.split('=')[0]!) || t.value === '--help'))) {
      const hint = spec.kind === 'string' && t.value !== undefined ? ` (for one that starts with --, write ${t.rawName}=VALUE)` : '';
      throw new FlagError(`${t.rawName} needs a value${takes(spec)}${hint}`);
    }
    const value = coerce(spec, t.value);
    if (value === undefined) throw new FlagError(`${t.rawName} must be ${expected(spec)}, got ${JSON.stringify(t.value)}`);
    given.set(key, value);
  }
  if (commands) {
    if (words.length === 0) throw new FlagError(`the first argument must be one of ${commands.join(', ')}`);
    if (!commands.includes(words[0] as C)) throw new FlagError(`the first argument must be one of ${commands.join(', ')}, got ${JSON.stringify(words[0])}`);
  }
  const extra = words.slice(commands ? 1 : 0);
  if (extra.length) throw new FlagError(`unexpected argument ${JSON.stringify(extra[0])}; every value follows its flag`);
  const quick = given.get('quick') === true && table.quick?.kind === 'bool';
  const out: Record<string, unknown> = { command: words[0] };
  for (const [key, spec] of Object.entries(table)) {
    if (given.has(key)) out[key] = given.get(key);
    else if (spec.required) throw new FlagError(`${flagName(key)} is required${takes(spec)}`);
    else out[key] = spec.kind === 'bool' ? false : quick && spec.quick !== undefined ? spec.quick : spec.default;
  }
  return out as FlagValues<T> & { readonly command: C };
}

function usageLine<C extends string>(table: FlagTable, info: ScriptInfo<C>): string {
  const parts = Object.entries(table).map(([k, s]) => {
    if (s.kind === 'bool') return `[${flagName(k)}]`;
    const arg = s.arg ?? (Array.isArray(s.default) ? s.default.join(',') : s.kind === 'size' ? 'BYTES' : s.kind === 'string' || s.kind === 'list' ? 'S' : 'N');
    return s.required ? `${flagName(k)} ${arg}` : `[${flagName(k)} ${arg}]`;
  });
  return ['usage:', info.run, ...(info.commands ? [info.commands.join('|')] : []), ...parts].join(' ');
}

/** --help: the usage line and one line per flag, with its default. */
export function helpText<C extends string>(table: FlagTable, info: ScriptInfo<C>): string {
  const shown = (v: unknown) => (Array.isArray(v) ? v.join(',') : String(v));
  const lines = Object.entries(table).map(([k, s]) => {
    const def = s.kind === 'bool' || s.default === undefined ? '' : ` (default ${shown(s.default)}${s.quick !== undefined ? `; ${shown(s.quick)} with --quick` : ''})`;
    return `  ${flagName(k).padEnd(18)} ${s.help}${def}`;
  });
  return [usageLine(table, info), ...lines].join('\n');
}

/**
 * Reads the script's flags from process.argv. A bad or unknown flag prints one sentence and
 * the usage line and exits 2; --help prints the flags and exits 0.
 */
export function parseFlags<const T extends FlagTable, const C extends string = never>(
  info: ScriptInfo<C> | string,
  table: T,
  argv: readonly string[] = process.argv.slice(2),
): FlagValues<T> & { readonly command: C } {
  const script = typeof info === 'string' ? (scriptInfo(info) as ScriptInfo<C>) : info;
  if (argv.includes('--help') && !('help' in table)) {
    process.stdout.write(helpText(table, script) + '\n');
    process.exit(0);
  }
  try {
    return readFlags(table, argv, script.commands);
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`${script.name}: ${err.message}\n${usageLine(table, script)}\n`);
    process.exit(2);
  }
}
