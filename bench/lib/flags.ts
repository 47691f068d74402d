// The bench scripts' command-line flags. Each script declares its table with src/base/config.ts's
// `opt.*`, as every server role does, and loadConfig reads it from the command line alone (no
// environment, no config file), so a value is checked and typed (ConfigOf) before anything
// starts. This file adds what the bench needs and src/base/config.ts has not: defaults under
// --quick, lists of whole numbers, choices for lists, a leading command word, --help, and the
// exit: a bad or unknown flag is one sentence naming it, the usage line, and exit code 2.
import { basename, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeOptions, flagName, loadConfig, type ConfigOf, type OptionSpec, type OptionTable } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';

export interface ScriptInfo<C extends string = never> {
  /** the prefix of every message; the script's file name by default */
  name: string;
  /** how the script is started, for the usage line */
  run: string;
  /** a leading word the script requires, one of these (scale-generate's fill|reopen) */
  commands?: readonly C[];
}

export interface FlagExtras<T extends OptionTable> {
  /** defaults under --quick, for scripts that have that flag */
  quick?: { readonly [K in keyof T]?: T[K]['default'] };
}

/** A bad command line; the message is the sentence shown to the user. */
export class FlagError extends Error {}

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** A comma-separated list of whole numbers (--replicas 1,2,3), each within min..max. */
export function ints(def: number[], describe: string, extra: { min?: number; max?: number } = {}): OptionSpec<number[]> & { items: 'int' } {
  return { kind: 'list', default: def, describe, ...extra, items: 'int' };
}

/** name and usage prefix of a script from its import.meta.url: bench/x.ts is `node bin/run-ts.mjs bench/x.ts`. */
export function scriptInfo(moduleUrl: string): ScriptInfo {
  const path = fileURLToPath(moduleUrl);
  return { name: basename(path).replace(/\.ts$/, ''), run: `node bin/run-ts.mjs ${relative(ROOT, path)}` };
}

const between = (s: OptionSpec) => (s.min !== undefined || s.max !== undefined ? ` between ${s.min ?? '-inf'} and ${s.max ?? 'inf'}` : '');
const bad = (key: string, what: string, raw: unknown) => new FlagError(`option ${flagName(key)} (from command line) must be ${what}, got ${JSON.stringify(raw)}`);

/** What loadConfig leaves to the bench: list items, and the words that are not flags. */
function refine(table: OptionTable, config: Record<string, unknown>, flags: Map<string, string | true>, positionals: string[], commands?: readonly string[]): void {
  for (const [key, spec] of Object.entries(table)) {
    const raw = flags.get(flagName(key));
    if (spec.kind !== 'list' || raw === undefined) continue;
    const items = config[key] as string[];
    if ((spec as { items?: string }).items === 'int') {
      const ns = items.map((x) => (/^\d+$/.test(x) ? Number(x) : Number.NaN));
      const ok = ns.length > 0 && ns.every((n) => Number.isSafeInteger(n) && (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max));
      if (!ok) throw bad(key, `a comma-separated list of whole numbers${between(spec)}`, raw);
      config[key] = Object.freeze(ns);
    } else if (spec.choices && (items.length === 0 || !items.every((x) => spec.choices!.includes(x)))) {
      throw bad(key, `a comma-separated list of ${spec.choices.join(', ')}`, raw);
    }
  }
  const dash = positionals.find((w) => w.startsWith('-'));
  if (dash) throw new FlagError(`unknown option ${dash}`);
  if (commands) {
    if (positionals.length === 0) throw new FlagError(`the first argument must be one of ${commands.join(', ')}`);
    if (!commands.includes(positionals[0]!)) throw new FlagError(`the first argument must be one of ${commands.join(', ')}, got ${JSON.stringify(positionals[0])}`);
  }
  const extra = positionals.slice(commands ? 1 : 0);
  if (extra.length) throw new FlagError(`unexpected argument ${JSON.stringify(extra[0])}; every value follows its flag`);
}

/** Reads argv against the table; throws FlagError with the sentence to show. */
export function readFlags<const T extends OptionTable, const C extends string = never>(
  table: T,
  argv: readonly string[],
  extras: FlagExtras<T> & { commands?: readonly C[] } = {},
): ConfigOf<T> & { readonly command: C } {
  // loadConfig always takes --config FILE; a bench script takes nothing it does not list.
  if (!('config' in table)) {
    const cfg = argv.find((a) => a === '--config' || a.startsWith('--config='));
    if (cfg) throw new FlagError('unknown option --config');
  }
  // loadConfig takes a word starting with -- as the next flag; say how to pass such a value.
  const known = new Map(Object.entries(table).map(([k, spec]) => [flagName(k), spec]));
  for (let i = 0; i + 1 < argv.length; i++) {
    const next = argv[i + 1]!;
    if (known.get(argv[i]!)?.kind === 'bool' || !known.has(argv[i]!) || !next.startsWith('--') || known.has(next.split('=')[0]!)) continue;
    throw new FlagError(`option ${argv[i]} needs a value (for one that starts with --, write ${argv[i]}=VALUE)`);
  }
  let loaded: ReturnType<typeof loadConfig<T>>;
  try {
    loaded = loadConfig(table, { argv, env: {} });
  } catch (err) {
    if (err instanceof UgcfsError && err.code === 'UGCFS_ERR_BAD_USAGE') throw new FlagError(err.message);
    throw err;
  }
  const config: Record<string, unknown> = { ...loaded.config };
  refine(table, config, loaded.flags, loaded.positionals, extras.commands);
  if (config.quick === true) {
    for (const [key, value] of Object.entries(extras.quick ?? {})) if (!loaded.flags.has(flagName(key))) config[key] = value;
  }
  config.command = loaded.positionals[0];
  return config as ConfigOf<T> & { readonly command: C };
}

/** The usage line: required flags bare, the others in brackets, each with what it takes. */
function usageLine<C extends string>(table: OptionTable, info: ScriptInfo<C>): string {
  const parts = Object.entries(table).map(([k, s]) => {
    if (s.kind === 'bool') return `[${flagName(k)}]`;
    const list = Array.isArray(s.default) && s.default.length ? s.default.join(',') : s.choices?.join(',');
    const arg = s.kind === 'list' ? list ?? 'A,B' : s.kind === 'int' || s.kind === 'number' ? 'N' : s.choices ? s.choices.join('|') : flagName(k).slice(2).toUpperCase();
    return s.required ? `${flagName(k)} ${arg}` : `[${flagName(k)} ${arg}]`;
  });
  return ['usage:', info.run, ...(info.commands ? [info.commands.join('|')] : []), ...parts].join(' ');
}

/** --help: the usage line, one line per flag with its default, and what --quick changes. */
export function helpText<T extends OptionTable, C extends string>(table: T, info: ScriptInfo<C>, extras: FlagExtras<T> = {}): string {
  const quick = Object.entries(extras.quick ?? {}).map(([k, v]) => `${flagName(k)} ${Array.isArray(v) ? v.join(',') : String(v)}`);
  return [usageLine(table, info), describeOptions(table), ...(quick.length ? [`  with --quick: ${quick.join(', ')}`] : [])].join('\n');
}

/**
 * Reads the script's flags from process.argv. A bad or unknown flag prints one sentence and
 * the usage line and exits 2; --help prints the flags and exits 0.
 */
export function parseFlags<const T extends OptionTable, const C extends string = never>(
  info: ScriptInfo<C> | string,
  table: T,
  extras: FlagExtras<T> = {},
  argv: readonly string[] = process.argv.slice(2),
): ConfigOf<T> & { readonly command: C } {
  const script = typeof info === 'string' ? (scriptInfo(info) as ScriptInfo<C>) : info;
  if (argv.includes('--help') && !('help' in table)) {
    process.stdout.write(helpText(table, script, extras) + '\n');
    process.exit(0);
  }
  try {
    return readFlags(table, argv, { ...extras, commands: script.commands });
  } catch (err) {
    if (!(err instanceof FlagError)) throw err;
    process.stderr.write(`${script.name}: ${err.message}\n${usageLine(table, script)}\n`);
    process.exit(2);
  }
}
