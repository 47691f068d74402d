// Long admin work from the CLI: start an operation on the name server and follow it. The
// operation runs on the name server, so Ctrl-C here only stops watching. Progress goes to
// stderr (a redrawn bar on a terminal, a plain line per 10% or 5 s otherwise), so stdout
// holds only the summary or the --json result.
import type { Writable } from 'node:stream';
import { opt } from '../src/base/config.ts';
import { CLUSTER_CLIENT_OPTIONS, nameserverClientFromConfig, type ClusterClientConfig } from '../src/clients/cluster-options.ts';
import { UgcfsError, isUgcfsError } from '../src/base/errors.ts';
import type { Operation, OperationKind } from '../src/wire/protocol.ts';
import type { CommandContext } from './command.ts';

/** Options every operation command takes. */
export const OP_COMMAND_OPTIONS = {
  ...CLUSTER_CLIENT_OPTIONS,
  pollMs: opt.int(250, 'how often progress is fetched from the name server, ms', { min: 20, max: 60_000 }),
  json: opt.bool(false, 'print the operation as JSON on stdout'),
  detach: opt.bool(false, 'start the operation, print its id and return'),
};

export type OpClientConfig = ClusterClientConfig;

const BAR = 30;

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** `[#####-----]` for a share in 0..1. */
export function bar(share: number, width = BAR): string {
  const s = Number.isFinite(share) ? Math.min(1, Math.max(0, share)) : 0;
  const filled = Math.round(s * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
}

export interface ProgressDisplay {
  update(op: Operation): void;
  finish(): void;
}

/** A progress line for operations; `unit` names what `done/total` counts. */
export function progressDisplay(out: Writable & { isTTY?: boolean; columns?: number }, unit: string): ProgressDisplay {
  const tty = out.isTTY === true;
  const started = Date.now();
  let lastTenth = -1;
  let lastAt = 0;
  let drawn = false;
  const text = (op: Operation) => {
    const share = op.total > 0 ? op.done / op.total : op.state === 'running' ? 0 : 1;
    const secs = (Date.now() - started) / 1000;
    const rate = secs > 0 && op.bytesDone > 0 ? `  ${formatBytes(op.bytesDone / secs)}/s` : '';
    return { share, line: `${op.kind} ${op.id}: ${op.done}/${op.total} ${unit} (${Math.floor(share * 100)}%)  ${formatBytes(op.bytesDone)}${rate}` };
  };
  return {
    update(op) {
      const { share, line } = text(op);
      const now = Date.now();
      if (tty) {
        out.write(`\r\x1b[2K${`${bar(share)} ${line}`.slice(0, Math.max(20, (out.columns ?? 120) - 1))}`);
        drawn = true;
        return;
      }
      const tenth = Math.floor(share * 10);
      if (tenth !== lastTenth || now - lastAt >= 5000) {
        lastTenth = tenth;
        lastAt = now;
        out.write(line + '\n');
      }
    },
    finish() {
      if (tty && drawn) out.write('\n');
      drawn = false;
    },
  };
}

export function postOperation(c: OpClientConfig, body: Record<string, unknown>): Promise<Operation> {
  return nameserverClientFromConfig(c).startOperation(body);
}

export function getOperation(c: OpClientConfig, id: string): Promise<Operation> {
  return nameserverClientFromConfig(c).operation(id);
}

export function listOperations(c: OpClientConfig): Promise<Operation[]> {
  return nameserverClientFromConfig(c).operations();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts an operation, or, when one of the same kind is already running, follows that one
 * instead (a re-run after Ctrl-C picks up where the watcher left off).
 */
export async function startOrAttach(ctx: CommandContext, c: OpClientConfig, kind: OperationKind, body: Record<string, unknown>): Promise<Operation> {
  try {
    return await postOperation(c, { kind, ...body });
  } catch (err) {
    if (!isUgcfsError(err, 'UGCFS_ERR_CONFLICT')) throw err;
    // Same kind and same target (a drain of another server is not ours to follow).
    const same = (o: Operation) => o.kind === kind && (body.dataserver === undefined || o.details?.dataserver === body.dataserver);
    const running = (await listOperations(c)).find((o) => same(o) && (o.state === 'running' || o.state === 'planned'));
    if (!running) throw err;
    ctx.stderr.write(`${kind} ${running.id} is already running; following it\n`);
    return running;
  }
}

/** Polls until the operation ends, drawing progress. The name server may restart meanwhile. */
export async function follow(ctx: CommandContext, c: OpClientConfig & { pollMs: number }, op: Operation, unit: string): Promise<Operation> {
  const display = progressDisplay(ctx.stderr, unit);
  const onInt = () => {
    display.finish();
    ctx.stderr.write(`stopped watching; ${op.kind} ${op.id} keeps running on the name server (see ugcfs status)\n`);
    process.exit(1);
  };
  process.once('SIGINT', onInt);
  let failingSince = 0;
  try {
    for (;;) {
      display.update(op);
      if (op.state !== 'running' && op.state !== 'planned') return op;
      await sleep(c.pollMs);
      try {
        op = await getOperation(c, op.id);
        failingSince = 0;
      } catch (err) {
        if (isUgcfsError(err, 'UGCFS_ERR_OPERATION_NOT_FOUND')) throw err;
        failingSince ||= Date.now();
        if (Date.now() - failingSince > 30_000) throw new UgcfsError(isUgcfsError(err) ? err.code : 'UGCFS_ERR_UPSTREAM', `lost the name server while following ${op.id}: ${(err as Error).message}`);
      }
    }
  } finally {
    display.finish();
    process.off('SIGINT', onInt);
  }
}

/** The one-line outcome; exit code 0 only when the operation is done. */
export function outcome(op: Operation): { line: string; code: number } {
  const secs = op.finishedAt ? ((op.finishedAt - op.startedAt) / 1000).toFixed(1) : '?';
  return { line: `${op.kind} ${op.id} ${op.state} in ${secs} s: ${op.message ?? ''}`.trimEnd(), code: op.state === 'done' ? 0 : 1 };
}
