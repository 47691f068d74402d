// Starts `ugcfs server` (the all-in-one) as a real process on free loopback ports and
// reads the addresses of every role from its 'listening' line.
import { join } from 'node:path';
import { start, tempDir, type Proc } from '../helpers/proc.ts';

export interface AllInOne {
  proc: Proc;
  origin: string;
  nameserver: string;
  dataservers: string[];
  dir: string;
  stop(): Promise<void>;
}

export async function startAllInOne(opts: { args?: string[]; env?: Record<string, string>; dir?: string } = {}): Promise<AllInOne> {
  const own = opts.dir ? undefined : tempDir('ugcfs-deploy-');
  const dir = opts.dir ?? own!.dir;
  const proc = await start(
    ['server', '--data', join(dir, 'data'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0', '--fsync=false', ...(opts.args ?? [])],
    { env: opts.env, timeoutMs: 60_000 },
  );
  const line = proc.lines.map((l) => { try { return JSON.parse(l) as Record<string, unknown>; } catch { return undefined; } }).find((l) => l?.msg === 'listening');
  return {
    proc,
    origin: proc.url,
    nameserver: String(line!.nameserver),
    dataservers: line!.dataservers as string[],
    dir,
    async stop() {
      await proc.kill('SIGKILL');
      own?.cleanup();
    },
  };
}
