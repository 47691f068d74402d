// Typed configuration: each role declares one table of options (its defaults), and
// loadConfig merges defaults < config file < environment < flags, validates every value
// once, and returns a frozen object that is passed down. Nothing reads process.env on
// import; the environment is an argument here.
import { readFileSync } from 'node:fs';
import { UgcfsError } from './errors.ts';

type Kind = 'string' | 'int' | 'number' | 'bool' | 'list' | 'url' | 'urls';

interface BaseSpec<T> {
  kind: Kind;
  default: T;
  describe: string;
  /** environment variable that may set it */
  env?: string;
  /** value must be given (by flag, env or file) */
  required?: boolean;
  min?: number;
  max?: number;
  /** allowed values for strings */
  choices?: readonly string[];
  /** secret values are redacted from logs and error messages */
  secret?: boolean;
}

export type OptionSpec<T = unknown> = BaseSpec<T>;
export type OptionTable = Record<string, OptionSpec>;
export type ConfigOf<T extends OptionTable> = { readonly [K in keyof T]: T[K]['default'] };

export const opt = {
  string: (def: string, describe: string, extra: Partial<BaseSpec<string>> = {}): OptionSpec<string> => ({ kind: 'string', default: def, describe, ...extra }),
  int: (def: number, describe: string, extra: Partial<BaseSpec<number>> = {}): OptionSpec<number> => ({ kind: 'int', default: def, describe, ...extra }),
  number: (def: number, describe: string, extra: Partial<BaseSpec<number>> = {}): OptionSpec<number> => ({ kind: 'number', default: def, describe, ...extra }),
  bool: (def: boolean, describe: string, extra: Partial<BaseSpec<boolean>> = {}): OptionSpec<boolean> => ({ kind: 'bool', default: def, describe, ...extra }),
  list: (def: string[], describe: string, extra: Partial<BaseSpec<string[]>> = {}): OptionSpec<string[]> => ({ kind: 'list', default: def, describe, ...extra }),
  url: (def: string, describe: string, extra: Partial<BaseSpec<string>> = {}): OptionSpec<string> => ({ kind: 'url', default: def, describe, ...extra }),
  /** comma-separated http(s) URLs, kept as one normalised string (`a,b`; splitUrls() reads it) */
  urls: (def: string, describe: string, extra: Partial<BaseSpec<string>> = {}): OptionSpec<string> => ({ kind: 'urls', default: def, describe, ...extra }),
};

/** The URLs of a `urls` option (or any comma-separated list), trailing slashes dropped. */
export function splitUrls(s: string): string[] {
  return s.split(',').map((u) => u.trim().replace(/\/+$/, '')).filter(Boolean);
}

/** Converts a table key like `blockSize` to its flag `--block-size`. */
export function flagName(key: string): string {
  return '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());
}

function usage(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_USAGE', message);
}

/** Shortest secret or token a server accepts: 32 characters (`openssl rand -hex 16` and up). */
export const MIN_SECRET_LENGTH = 32;
// The shape of the values shipped as examples (.env.example, docs): whoever has read the
// repository knows them, and a placeholder left in a copied line (`<upload token>`).
const EXAMPLE_SECRET = /^(change-?me|replace-?me|your-|example-)|^<.*>$/i;

/**
 * A credential that anyone could guess stops the start: too short, or an example value.
 * Returns the value; throws bad usage naming the option and where it came from, never the value.
 */
export function checkCredential(name: string, value: string): string {
  if (value.length < MIN_SECRET_LENGTH) throw usage(`option ${name} is shorter than ${MIN_SECRET_LENGTH} characters; generate one with: openssl rand -hex 32`);
  if (EXAMPLE_SECRET.test(value)) throw usage(`option ${name} is an example value; generate one with: openssl rand -hex 32`);
  return value;
}

function coerce(key: string, spec: OptionSpec, raw: unknown, source: string): unknown {
  const name = `${flagName(key)} (from ${source})`;
  const shown = spec.secret ? '<redacted>' : JSON.stringify(raw);
  switch (spec.kind) {
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = String(raw).toLowerCase();
      if (['1', 'true', 'yes', 'on', ''].includes(s)) return true;
      if (['0', 'false', 'no', 'off'].includes(s)) return false;
      throw usage(`option ${name} must be true or false, got ${shown}`);
    }
    case 'int':
    case 'number': {
      const s = String(raw).trim();
      const n = typeof raw === 'number' ? raw : /^-?\d+(\.\d+)?([eE]\d+)?$/.test(s) ? Number(s) : parseSize(s);
      if (!Number.isFinite(n) || (spec.kind === 'int' && !Number.isInteger(n))) {
        throw usage(`option ${name} must be ${spec.kind === 'int' ? 'an integer' : 'a number'}, got ${shown}`);
      }
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        throw usage(`option ${name} must be between ${spec.min ?? '-inf'} and ${spec.max ?? 'inf'}, got ${shown}`);
      }
      return n;
    }
    case 'list': {
      const list = Array.isArray(raw) ? raw.map(String) : String(raw).split(',').map((s) => s.trim()).filter(Boolean);
      if (spec.secret) list.forEach((v) => checkCredential(name, v));
      return list;
    }
    case 'urls': {
      const list = splitUrls(String(raw));
      if (list.length === 0 && !spec.required) return '';
      if (list.length === 0) throw usage(`option ${name} must list at least one http(s) URL`);
      return list.map((u) => coerce(key, { ...spec, kind: 'url', required: true }, u, source)).join(',');
    }
    case 'url': {
      const s = String(raw);
      if (s === '' && !spec.required) return s;
      try {
        const u = new URL(s);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        throw usage(`option ${name} must be an http(s) URL, got ${shown}`);
      }
      return s.replace(/\/+$/, '');
    }
    case 'string': {
      const s = String(raw);
      if (spec.choices && !spec.choices.includes(s)) {
        throw usage(`option ${name} must be one of ${spec.choices.join(', ')}, got ${shown}`);
      }
      return spec.secret && s !== '' ? checkCredential(name, s) : s;
    }
  }
}

/** Accepts plain numbers and sizes like 64k, 256M, 1G (powers of 1024). NaN when neither. */
export function parseSize(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtT])i?[bB]?$/.exec(s.trim());
  if (!m) return Number.NaN;
  const mult = { k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as 'k' | 'm' | 'g' | 't'];
  return Math.round(Number(m[1]) * mult);
}

export interface ParsedArgs {
  flags: Map<string, string | true>;
  positionals: string[];
}

/** Splits argv into `--flag value`, `--flag=value`, bare `--flag` and positionals. */
export function parseArgv(argv: readonly string[], booleanFlags: ReadonlySet<string> = new Set()): ParsedArgs {
  const flags = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      if (eq > 0) { flags.set(a.slice(0, eq), a.slice(eq + 1)); continue; }
      const next = argv[i + 1];
      if (booleanFlags.has(a) || next === undefined || next.startsWith('--')) flags.set(a, true);
      else { flags.set(a, next); i++; }
      continue;
    }
    if (a === '-o' && argv[i + 1] !== undefined) { flags.set('-o', argv[++i]!); continue; }
    positionals.push(a);
  }
  return { flags, positionals };
}

export interface LoadOptions {
  argv?: readonly string[];
  env?: Record<string, string | undefined>;
  /** extra values (e.g. from the all-in-one server), applied above defaults, below file/env/flags */
  overrides?: Record<string, unknown>;
  /** flags that are not options of this table but are allowed (e.g. --json on commands) */
  allowFlags?: readonly string[];
}

/**
 * Merges and validates a role's configuration. Throws UGCFS_ERR_BAD_USAGE with a sentence
 * naming the option on any bad or unknown value.
 */
export function loadConfig<T extends OptionTable>(table: T, opts: LoadOptions = {}): { config: ConfigOf<T>; positionals: string[]; flags: Map<string, string | true> } {
  const booleanFlags = new Set(Object.entries(table).filter(([, s]) => s.kind === 'bool').map(([k]) => flagName(k)));
  const { flags, positionals } = parseArgv(opts.argv ?? [], booleanFlags);
  const env = opts.env ?? {};
  const byFlag = new Map(Object.keys(table).map((k) => [flagName(k), k]));
  const allowed = new Set(['--config', ...(opts.allowFlags ?? [])]);
  for (const f of flags.keys()) {
    if (!byFlag.has(f) && !allowed.has(f)) throw usage(`unknown option ${f}`);
  }
  let file: Record<string, unknown> = {};
  const configPath = flags.get('--config') ?? env.UGCFS_CONFIG;
  if (typeof configPath === 'string' && configPath) {
    try {
      file = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw usage(`option --config: cannot read JSON config file ${configPath}: ${(err as Error).message}`);
    }
    for (const k of Object.keys(file)) {
      if (!(k in table)) throw usage(`option ${k} in config file ${configPath} is unknown`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(table)) {
    let value: unknown = spec.default;
    let source = 'default';
    if (opts.overrides && key in opts.overrides) { value = opts.overrides[key]; source = 'defaults'; }
    if (key in file) { value = coerce(key, spec, file[key], 'config file'); source = 'config file'; }
    if (spec.env && env[spec.env] !== undefined && env[spec.env] !== '') { value = coerce(key, spec, env[spec.env], spec.env); source = spec.env; }
    const f = flags.get(flagName(key));
    if (f !== undefined) {
      if (f === true && spec.kind !== 'bool') throw usage(`option ${flagName(key)} needs a value`);
      value = coerce(key, spec, f, 'command line');
      source = 'command line';
    }
    if (spec.required && (value === '' || value === undefined)) {
      throw usage(`option ${flagName(key)} is required${spec.env ? ` (or set ${spec.env})` : ''}`);
    }
    if (source === 'default' && (spec.kind === 'url' || spec.kind === 'urls') && value) value = coerce(key, spec, value, 'default');
    out[key] = Array.isArray(value) ? Object.freeze([...value]) : value;
  }
  return { config: Object.freeze(out) as ConfigOf<T>, positionals, flags };
}

/** A usage text for a role's options, for `ugcfs <role> --help`. */
export function describeOptions(table: OptionTable): string {
  return Object.entries(table)
    .map(([k, s]) => `  ${flagName(k).padEnd(22)} ${s.describe}${s.env ? ` [env ${s.env}]` : ''}${s.secret || s.default === '' || (Array.isArray(s.default) && s.default.length === 0) ? '' : ` (default ${JSON.stringify(s.default)})`}`)
    .join('\n');
}
