// The supervisor of `ugcfs server`: starts each role as a child process (cli/role-process.ts),
// one after the other, each once the one before it serves; restarts a role that exits, after
// a backoff that doubles with each exit in a row (1 s up to 30 s; a role that served for a
// minute starts again from 1 s), logging the role, its pid and how it ended; and stops them
// all on SIGTERM or Ctrl-C in stop order (the origin, then the data servers together, then
// the name server), each through its own graceful shutdown, then exits 0. A second signal
// SIGKILLs every role (and an origin's workers) and exits 1.
import type { Logger } from '../src/base/log.ts';
import { RoleProcess, type RoleCommand, type RoleExit, type RoleProcessOptions, type RoleServing } from './role-process.ts';

export interface RoleSpec {
  /** how logs name it: `nameserver`, `dataserver:ds-1`, `origin` */
  name: string;
  /** the command of each start; asked again for a restart, so it can keep a port learnt at the first */
  command(): RoleCommand;
  /** roles stop in rising order, those of equal order together */
  stopOrder: number;
}

const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** a role that served this long before it exited is restarted after BACKOFF_FIRST_MS again */
const STEADY_MS = 60_000;

interface Supervised {
  spec: RoleSpec;
  proc: RoleProcess;
  /** exits in a row without a steady run between them */
  failures: number;
  /** when the current child started serving (0: it does not serve) */
  servingSince: number;
  everServed: boolean;
  restart?: NodeJS.Timeout;
}

export class Supervisor {
  private readonly roles: Supervised[] = [];
  private stopping = false;

  constructor(private readonly log: Logger, private readonly opts: RoleProcessOptions) {}

  /**
   * Starts a role and resolves once it serves. A role that exits before it first serves is
   * not restarted: the start rejects with its RoleStartError (the caller stops the rest).
   */
  start(spec: RoleSpec): Promise<RoleServing> {
    const role: Supervised = { spec, proc: new RoleProcess(spec.name, this.opts), failures: 0, servingSince: 0, everServed: false };
    this.roles.push(role);
    return this.launch(role);
  }

  /** The pid of each role's current child, by role name. */
  pids(): Record<string, number | undefined> {
    return Object.fromEntries(this.roles.map((r) => [r.spec.name, r.proc.running ? r.proc.pid : undefined]));
  }

  private async launch(role: Supervised): Promise<RoleServing> {
    const serving = await role.proc.start(role.spec.command(), (exit) => this.exited(role, exit));
    role.servingSince = Date.now();
    const restarted = role.everServed;
    role.everServed = true;
    this.log.info({ role: role.spec.name, rolePid: serving.pid, url: serving.url, ...serving.details, ...(restarted ? { restarted } : {}) }, 'role serving');
    return serving;
  }

  private exited(role: Supervised, exit: RoleExit): void {
    if (this.stopping || !role.everServed) return;
    if (role.servingSince !== 0 && Date.now() - role.servingSince >= STEADY_MS) role.failures = 0;
    role.servingSince = 0;
    role.failures++;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (role.failures - 1));
    this.log.error({ role: role.spec.name, rolePid: role.proc.pid, code: exit.code, signal: exit.signal, restartInMs: delay }, 'role exited; restarting it');
    role.restart = setTimeout(() => {
      role.restart = undefined;
      if (this.stopping) return;
      // A restart that fails before serving is an exit like any other: exited() schedules the next.
      this.launch(role).catch(() => undefined);
    }, delay);
  }

  /** Stops every role gracefully in stop order; resolves true when each exited with code 0. */
  async stop(): Promise<boolean> {
    this.stopping = true;
    for (const r of this.roles) clearTimeout(r.restart);
    const orders = [...new Set(this.roles.map((r) => r.spec.stopOrder))].sort((a, b) => a - b);
    let clean = true;
    for (const order of orders) {
      const group = this.roles.filter((r) => r.spec.stopOrder === order && r.proc.running);
      await Promise.all(
        group.map(async (r) => {
          const pid = r.proc.pid;
          const exit = await r.proc.signal('SIGTERM');
          if (exit.code !== 0) clean = false;
          this.log.info({ role: r.spec.name, rolePid: pid, code: exit.code, signal: exit.signal }, 'role stopped');
        }),
      );
    }
    return clean;
  }

  /** SIGKILLs every role at once, with whatever processes it started. */
  kill(): void {
    this.stopping = true;
    for (const r of this.roles) {
      clearTimeout(r.restart);
      r.proc.forceKill();
    }
  }

  /**
   * SIGTERM and SIGINT (Ctrl-C) stop every role in order, then the process exits (0 when
   * every role stopped cleanly); a second one kills them all and exits 1.
   */
  handleSignals(): void {
    let signalled = false;
    const handler = (sig: NodeJS.Signals) => {
      if (signalled) {
        this.log.warn({ sig }, 'second signal: killing every role');
        this.kill();
        process.exit(1);
      }
      signalled = true;
      this.log.info({ sig }, 'shutting down');
      void this.stop().then((clean) => {
        this.log.info({ clean }, 'every role stopped');
        process.exit(clean ? 0 : 1);
      });
    };
    process.on('SIGTERM', handler);
    process.on('SIGINT', handler);
  }
}
