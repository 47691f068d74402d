// The contract every `ugcfs <command>` module fulfils. Commands are loaded by name from
// cli/commands/<name>.ts, so adding one never touches the dispatcher.
import type { Writable } from 'node:stream';

export interface CommandContext {
  argv: string[];
  env: Record<string, string | undefined>;
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
}

/** Exit code 0 done, 1 failed, 2 bad usage; 'serving' keeps the process up (server roles). */
export type CommandResult = number | 'serving';

export interface CommandModule {
  summary: string;
  usage: string;
  run(ctx: CommandContext): Promise<CommandResult>;
}

export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;
