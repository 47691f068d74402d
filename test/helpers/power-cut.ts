// Mounts test/helpers/powercut-fs (a FUSE file system in Python) so tests can run real
// processes on a "disk" that, at a cut, loses whatever fsync, fdatasync or a directory's
// fsync did not make durable. The model and the daemon's protocol: powercut-fs/README.md.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const POWERCUT_FS_SCRIPT = fileURLToPath(new URL('./powercut-fs/powercut_fs.py', import.meta.url));
const PYTHON = '/usr/bin/python3';

export type FuseCheck = { ok: true } | { ok: false; reason: string };

export interface PowerCutStats {
  cuts: number;
  fsync: number;
  fdatasync: number;
  fsyncdir: number;
  writes: number;
  bytesWritten: number;
  opens: number;
  /** opens with O_DIRECT among them */
  directOpens: number;
  fallocate: number;
  inodes: number;
  /** bytes in files as processes see them */
  volatileBytes: number;
  /** bytes a cut would leave */
  durableBytes: number;
  /** bytes written since their file's last fsync (what a cut would revert) */
  dirtyBytes: number;
  handles: number;
}

export interface PowerCutFs {
  /** the mount point */
  root: string;
  /** the daemon's pid */
  pid: number;
  /** the tail of the daemon's stderr (tracebacks; with `trace`, every namespace op and sync) */
  log(): string;
  /**
   * SIGKILLs `procs` and waits until they are gone (their last writes have then reached the
   * daemon or never will), then cuts the power: every file and directory is back to what was
   * durable. File handles still open across the cut fail with EIO afterwards.
   */
  cut(procs?: Array<ChildProcess | number>): Promise<void>;
  stats(): Promise<PowerCutStats>;
  /** makes everything durable, as if every file and directory had been fsynced */
  sync(): Promise<void>;
  unmount(): Promise<void>;
}

let checked: FuseCheck | undefined;

/** Whether this machine can mount the power-cut file system; the reason is for a skip message. */
export function fuseUsable(): FuseCheck {
  return (checked ??= checkFuse());
}

function checkFuse(): FuseCheck {
  if (process.platform !== 'linux') return { ok: false, reason: 'FUSE power-cut tests need Linux' };
  try {
    accessSync('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch (err) {
    return { ok: false, reason: `/dev/fuse not usable (${(err as NodeJS.ErrnoException).code})` };
  }
  if (!fusermount()) return { ok: false, reason: 'no fusermount3 or fusermount (Debian package fuse3)' };
  if (process.getuid?.() === 0 && !hasCapSysAdmin()) return { ok: false, reason: 'root without CAP_SYS_ADMIN cannot mount' };
  if (!existsSync(PYTHON)) return { ok: false, reason: `${PYTHON} missing` };
  // the daemon's own import: fusepy (Debian) or fuse (pip), and libfuse 2 under either
  const probe = spawnSync(PYTHON, ['-c', 'import sys\ntry:\n import fusepy as f\nexcept ImportError:\n import fuse as f\nsys.exit(0 if hasattr(f, "FUSE") else 1)'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.status !== 0) {
    const why = (probe.stderr || probe.error?.message || '').trim().split('\n').pop() ?? '';
    return { ok: false, reason: `${PYTHON} cannot import fusepy (Debian package python3-fusepy): ${why}` };
  }
  return { ok: true };
}

function hasCapSysAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? (BigInt('0x' + m[1]) & (1n << 21n)) !== 0n : false;
}

let fusermountPath: string | null | undefined;
function fusermount(): string | null {
  if (fusermountPath !== undefined) return fusermountPath;
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/bin', '/bin'];
  for (const name of ['fusermount3', 'fusermount'])
    for (const d of dirs) {
      const p = join(d, name);
      if (d && existsSync(p)) return (fusermountPath = p);
    }
  return (fusermountPath = null);
}

/** mountinfo escapes space, tab, newline and backslash as octal */
function isMounted(dir: string): boolean {
  const esc = dir.replace(/[ \t\n\\]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === esc && l.includes(' - fuse.powercut '));
}

interface Live {
  root: string;
  daemon: ChildProcess;
  /** removes what mounting created besides the mount: the log, the mount point if ours */
  tidy(): void;
}
const live = new Set<Live>();
// A test that fails or a worker that exits without unmounting leaves no mount behind. (A
// worker killed outright closes the daemon's stdin, and the daemon unmounts itself.)
process.on('exit', () => {
  for (const m of live) {
    spawnSync(fusermount() ?? 'fusermount3', ['-u', '-z', m.root], { stdio: 'ignore' });
    m.daemon.kill('SIGKILL');
    m.tidy();
  }
});

/**
 * Mounts a fresh power-cut file system on `dir` (an empty directory) or on a new temporary
 * directory, and resolves once it answers. Call `unmount()` when done (afterEach/afterAll).
 */
export async function mountPowerCutFs(dir?: string, opts: { sizeBytes?: number; trace?: boolean } = {}): Promise<PowerCutFs> {
  const made = dir === undefined;
  const root = resolve(dir ?? mkdtempSync(join(tmpdir(), 'ugcfs-powercut-')));
  const args = ['-u', POWERCUT_FS_SCRIPT, root];
  if (opts.sizeBytes !== undefined) args.push('--size', String(opts.sizeBytes));
  if (opts.trace) args.push('--trace');
  // stderr goes to a file, not a pipe: a test blocked in a synchronous call on the mount
  // cannot drain a pipe, and a daemon blocked writing to it would never answer that call
  const logPath = join(mkdtempSync(join(tmpdir(), 'ugcfs-powercut-log-')), 'daemon.log');
  const logFd = openSync(logPath, 'a');
  // its own process group: a signal for the test's group (a SIGKILL of the whole run) must
  // not kill the daemon under a live mount; it notices its closed stdin and unmounts
  const daemon = spawn(PYTHON, args, { stdio: ['pipe', 'pipe', logFd], detached: true });
  closeSync(logFd);
  // a mount a test forgot must not keep the worker alive; the exit handler below unmounts it
  daemon.unref();
  (daemon.stdin as unknown as { unref?(): void }).unref?.();
  (daemon.stdout as unknown as { unref?(): void }).unref?.();
  const tidy = () => {
    rmSync(dirname(logPath), { recursive: true, force: true });
    if (made) {
      try {
        rmdirSync(root);
      } catch {
        // still busy after a lazy unmount: a temp dir left behind, not a mount
      }
    }
  };
  const entry: Live = { root, daemon, tidy };
  live.add(entry);
  const log = () => {
    try {
      return readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n');
    } catch {
      return '';
    }
  };
  const exited = new Promise<void>((res) => daemon.once('exit', () => res()));
  let gone = false;
  let desynced = false;
  void exited.then(() => {
    gone = true;
    failAll(new Error(`powercut_fs exited (code ${daemon.exitCode}, signal ${daemon.signalCode}):\n${log()}`));
  });

  // One answer line per command, in order.
  const waiting: Array<{ res: (line: string) => void; rej: (err: Error) => void }> = [];
  let onReady: (() => void) | undefined;
  const failAll = (err: Error) => {
    for (const w of waiting.splice(0)) w.rej(err);
  };
  lines(daemon.stdout!, (line) => {
    if (line.startsWith('ready ')) return onReady?.();
    const w = waiting.shift();
    if (!w) return;
    if (line.startsWith('error ')) w.rej(new Error(`powercut_fs: ${line.slice(6)}`));
    else w.res(line);
  });
  daemon.stdin!.on('error', () => {}); // EPIPE once the daemon is gone: reported by `exited`

  const command = (cmd: string, timeoutMs = 30_000): Promise<string> => {
    if (gone || desynced) return Promise.reject(new Error(`powercut_fs is not ${gone ? 'running' : 'answering'}:\n${log()}`));
    return new Promise<string>((res, rej) => {
      const timer = setTimeout(() => {
        // a late answer would go to the next command: fail this one and all after it
        desynced = true;
        failAll(new Error(`powercut_fs: no answer to ${cmd} within ${timeoutMs} ms:\n${log()}`));
      }, timeoutMs);
      waiting.push({
        res: (l) => (clearTimeout(timer), res(l)),
        rej: (e) => (clearTimeout(timer), rej(e)),
      });
      daemon.stdin!.write(cmd + '\n');
    });
  };

  let unmounted: Promise<void> | undefined;
  const unmount = () =>
    (unmounted ??= (async () => {
      daemon.ref(); // unref'd, its exit alone would not keep this process waiting for it
      const fm = fusermount() ?? 'fusermount3';
      if (!gone && isMounted(root) && spawnSync(fm, ['-u', root], { stdio: 'ignore' }).status !== 0) {
        // busy (a process still has a file open there): detach now; the daemon would serve
        // that file until it is closed, so it is killed below and the file fails ENOTCONN
        spawnSync(fm, ['-u', '-z', root], { stdio: 'ignore' });
      }
      if (!(await within(exited, 3_000))) {
        daemon.kill('SIGKILL');
        await exited;
      }
      // a daemon that died leaves a dead mount ("Transport endpoint is not connected")
      if (isMounted(root)) spawnSync(fm, ['-u', '-z', root], { stdio: 'ignore' });
      live.delete(entry);
      tidy();
    })());

  try {
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`powercut_fs did not mount ${root} within 15 s:\n${log()}`)), 15_000);
      onReady = () => (clearTimeout(timer), res());
      void exited.then(() => (clearTimeout(timer), rej(new Error(`powercut_fs exited before mounting ${root}:\n${log()}`))));
    });
    // "ready" follows the kernel's INIT, which follows the mount; check the table anyway
    for (let i = 0; !isMounted(root); i++) {
      if (i > 200) throw new Error(`powercut_fs said ready but ${root} is not in /proc/self/mountinfo`);
      await sleep(10);
    }
  } catch (err) {
    await unmount();
    throw err;
  }

  return {
    root,
    pid: daemon.pid!,
    log,
    async cut(procs = []) {
      await Promise.all(procs.map(killAndWait));
      const answer = await command('cut');
      if (!/^cut \d+$/.test(answer)) throw new Error(`powercut_fs: unexpected answer to cut: ${answer}`);
    },
    async stats() {
      const answer = await command('stats');
      return JSON.parse(answer.slice('stats '.length)) as PowerCutStats;
    },
    async sync() {
      await command('sync');
    },
    unmount,
  };
}

/** SIGKILL, then wait until the process has exited and been reaped (or is a zombie). */
async function killAndWait(p: ChildProcess | number): Promise<void> {
  if (typeof p !== 'number') {
    if (p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((res) => p.once('exit', () => res()));
    p.kill('SIGKILL');
    if (!(await within(exited, 10_000))) throw new Error(`process ${p.pid} did not exit after SIGKILL`);
    return;
  }
  try {
    process.kill(p, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return;
    throw err;
  }
  // not our child, so no exit event: a zombie has closed its files, which is what counts
  for (let i = 0; i < 1000; i++) {
    let state: string;
    try {
      state = readFileSync(`/proc/${p}/stat`, 'utf8').replace(/^.*\) /s, '')[0] ?? '';
    } catch {
      return;
    }
    if (state === 'Z' || state === 'X') return;
    await sleep(10);
  }
  throw new Error(`process ${p} did not exit after SIGKILL`);
}

function lines(stream: NodeJS.ReadableStream, onLine: (l: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), t]);
  } finally {
    clearTimeout(timer);
  }
}
