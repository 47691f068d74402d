// One role of `ugcfs server` as a child process: `node <the bin's Node flags> bin/ugcfs.mjs
// <role> --flag=value...`, the same command an operator runs for that role alone, with
// cli/role-process-guard.mjs loaded first: the child leaves a terminal's Ctrl-C to the
// supervisor (which stops the roles in order), and stops itself when the IPC channel to the
// supervisor closes, so it never outlives the supervisor.
//
// Its output is read line by line and passed on to the supervisor's own stdout and stderr:
// JSON log lines unchanged (each names its role already), other lines (a crash's stack
// trace) prefixed with `[role] `. Its `listening` line is not passed on: it is what tells the
// supervisor the role serves (and at which URL), and the supervisor's own `listening` line,
// for the whole cluster, is the one ugcfs server prints.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { flagName, type OptionTable } from '../src/base/config.ts';
import { ugcfsNodeFlags } from '../src/base/node-flags.ts';

const BIN = fileURLToPath(new URL('../bin/ugcfs.mjs', import.meta.url));
const GUARD = new URL('./role-process-guard.mjs', import.meta.url).href;
/** stderr lines kept to say why a role failed to start */
const KEPT_ERROR_LINES = 20;

export interface RoleCommand {
  /** `ugcfs` arguments: the role, then one `--flag=value` per option given */
  args: string[];
  /** the secrets, by their environment name: never on a command line (ps shows those to everyone) */
  secretEnv: Record<string, string>;
}

/**
 * `ugcfs <role>` with the option values given: each by its flag, but a secret one (cluster
 * secret, tokens) by the environment variable its table names.
 */
export function roleCommand(role: string, table: OptionTable, values: Record<string, unknown>): RoleCommand {
  const args = [role];
  const secretEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    const spec = table[key];
    if (!spec) throw new Error(`ugcfs ${role} has no option ${key}`);
    const text = Array.isArray(value) ? value.join(',') : String(value);
    if (spec.secret) {
      if (!spec.env) throw new Error(`secret option ${key} of ugcfs ${role} has no environment variable`);
      if (text !== '') secretEnv[spec.env] = text;
    } else args.push(`${flagName(key)}=${text}`);
  }
  return { args, secretEnv };
}

/**
 * A role's options as the all-in-one offers them: every option of the role's table, under its
 * own flag, config key and environment variable, except the `decided` ones, which the
 * all-in-one sets itself (ports, directories, ids, the name server's URL, the secrets, and
 * what its own options stand for). One declaration per role drives `ugcfs server`'s option
 * table, its --help, docs/CONFIGURATION.md and each role's command line.
 */
export interface RoleOptions<T extends OptionTable = OptionTable, D extends keyof T = keyof T> {
  table: T;
  decided: readonly D[];
  /** the options passed through */
  options: Omit<T, D>;
}

export function roleOptions<T extends OptionTable, D extends keyof T & string>(table: T, decided: readonly D[]): RoleOptions<T, D> {
  for (const k of decided) if (!(k in table)) throw new Error(`decided option ${k} is not in the role's table`);
  const options = Object.fromEntries(Object.entries(table).filter(([k]) => !(decided as readonly string[]).includes(k))) as Omit<T, D>;
  return { table, decided, options };
}

/**
 * The values of `role`'s passed options in the all-in-one's `config` that differ from the
 * role's own defaults: the rest the role takes from its defaults, as the separate command does.
 */
export function passedValues(role: RoleOptions, config: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, spec] of Object.entries(role.options as OptionTable)) {
    if (JSON.stringify(config[k]) !== JSON.stringify(spec.default)) out[k] = config[k];
  }
  return out;
}

export interface RoleExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The role exited before it served: its exit, and the last lines it wrote on stderr. */
export class RoleStartError extends Error {
  constructor(readonly role: string, readonly exit: RoleExit, readonly stderr: string[]) {
    super(`${role} exited (${exit.code ?? exit.signal}) before serving${RoleStartError.why(stderr)}`);
  }

  /** Its own one-line complaint (`ugcfs <role>: ...`), else the error a crash printed first. */
  private static why(stderr: string[]): string {
    const line = [...stderr].reverse().find((l) => l.startsWith('ugcfs ')) ?? stderr.find((l) => /^\w*Error\b/.test(l)) ?? stderr[stderr.length - 1];
    return line === undefined ? '' : `: ${line}`;
  }
}

export interface RoleProcessOptions {
  /** the environment the supervisor was given; every UGCFS_ variable is left out of the child's */
  env: Record<string, string | undefined>;
  stdout: Writable;
  stderr: Writable;
}

/** What one started child said when it served. */
export interface RoleServing {
  pid: number;
  url: string;
  /** the other fields of its `listening` line (workers, replicas...) */
  details: Record<string, unknown>;
}

export class RoleProcess {
  child: ChildProcess | undefined;
  private exited: Promise<RoleExit> = Promise.resolve({ code: 0, signal: null });

  constructor(readonly name: string, private readonly opts: RoleProcessOptions) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /**
   * Spawns the role; resolves once it logs `listening`, rejects with RoleStartError if it
   * exits first. `onExit` hears of this child's exit, whenever it comes.
   */
  start(cmd: RoleCommand, onExit: (exit: RoleExit) => void): Promise<RoleServing> {
    const env: Record<string, string> = {};
    // What a single-role process reads from its environment (UGCFS_PORT, UGCFS_NAMESERVER,
    // UGCFS_CONFIG...) is not meant for the roles of the all-in-one: their command line says it all.
    for (const [k, v] of Object.entries(this.opts.env)) if (v !== undefined && !k.startsWith('UGCFS_')) env[k] = v;
    Object.assign(env, cmd.secretEnv);
    const child = spawn(process.execPath, [...ugcfsNodeFlags(BIN), '--import', GUARD, BIN, ...cmd.args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    this.child = child;
    const errors: string[] = [];
    const stderrEnd = new Promise((r) => child.stderr!.once('end', r));
    let onListening: (line: Record<string, unknown>) => void = () => {};
    const serving = new Promise<RoleServing>((resolve, reject) => {
      onListening = (line) => {
        const { level: _l, time: _t, pid: _p, hostname: _h, name: _n, msg: _m, url, ...details } = line;
        resolve({ pid: child.pid!, url: String(url), details });
      };
      this.exited = new Promise<RoleExit>((done) => {
        child.once('exit', (code, signal) => {
          const exit = { code, signal };
          // Its last words (why it could not start) may still be in the pipe: read them
          // first, but not for long (an origin's workers hold the pipe until they follow).
          void Promise.race([stderrEnd, new Promise((r) => setTimeout(r, 1000).unref())]).then(() => {
            reject(new RoleStartError(this.name, exit, errors));
            done(exit);
            onExit(exit);
          });
        });
      });
    });
    // Only the spawn itself failing (never for node) would emit this; the exit follows.
    child.on('error', (err) => errors.push(err.message));
    forwardLines(child.stdout!, this.opts.stdout, `[${this.name}] `, (line) => onListening(line));
    forwardLines(child.stderr!, this.opts.stderr, `[${this.name}] `, (line) => onListening(line), (raw) => {
      errors.push(raw);
      if (errors.length > KEPT_ERROR_LINES) errors.shift();
    });
    serving.catch(() => undefined);
    return serving;
  }

  /** Sends `signal` to the role (its own shutdown on SIGTERM); resolves with its exit. */
  signal(signal: NodeJS.Signals): Promise<RoleExit> {
    if (this.running) this.child!.kill(signal);
    return this.exited;
  }

  /** SIGKILL to the role (an origin's workers follow it: their channel to it closes). */
  forceKill(): void {
    if (this.running) this.child!.kill('SIGKILL');
  }
}

/**
 * Passes a child's output on, whole lines at a time (several writers share the
 * destination). A `listening` JSON line goes to `listening` instead.
 */
function forwardLines(
  from: NodeJS.ReadableStream,
  to: Writable,
  prefix: string,
  listening: (line: Record<string, unknown>) => void,
  plain?: (line: string) => void,
): void {
  let rest = '';
  from.setEncoding('utf8');
  const flush = (text: string) => {
    let out = '';
    for (const line of text.split('\n')) {
      if (line === '') continue;
      if (line[0] === '{') {
        if (line.includes('"msg":"listening"')) {
          try {
            const parsed = JSON.parse(line) as Record<string, unknown>;
            if (parsed.msg === 'listening' && typeof parsed.url === 'string') {
              listening(parsed);
              continue;
            }
          } catch {
            // not one line of JSON after all: passed on as it is
          }
        }
        out += line + '\n';
      } else {
        plain?.(line);
        out += prefix + line + '\n';
      }
    }
    if (out !== '') to.write(out);
  };
  from.on('data', (chunk: string) => {
    const text = rest + chunk;
    const end = text.lastIndexOf('\n');
    if (end < 0) {
      rest = text;
      return;
    }
    rest = text.slice(end + 1);
    flush(text.slice(0, end));
  });
  from.on('end', () => {
    if (rest !== '') flush(rest);
    rest = '';
  });
}
