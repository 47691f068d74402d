// `ugcfs server` runs each role in a process of its own, under its supervision: a role that
// is SIGKILLed is restarted on the same URL (logged with its role and signal) while reads go
// on; SIGTERM, or a terminal's Ctrl-C (SIGINT to the whole process group), stops the origin,
// then the data servers, then the name server, exits 0 and leaves no process behind; and the
// roles do not outlive a supervisor that is itself SIGKILLed.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BIN, CORPUS, NODE_FLAGS, ROOT, run, tempDir, waitFor } from '../helpers/proc.ts';
import { startReady } from '../helpers/ready-process.ts';
import { alive, loggedPids, startAllInOne, type AllInOne } from './all-in-one.ts';

type Line = Record<string, unknown> & { msg?: string; role?: string; pid?: number; rolePid?: number };

function jsonLines(s: AllInOne): Line[] {
  return s.proc.lines.filter((l) => l[0] === '{').flatMap((l) => {
    try {
      return [JSON.parse(l) as Line];
    } catch {
      return [];
    }
  });
}

/** The pid the supervisor last said `role` serves with. */
function servingPid(s: AllInOne, role: string): number {
  const last = jsonLines(s).filter((l) => l.name === 'server' && l.msg === 'role serving' && l.role === role).pop();
  expect(last, `a 'role serving' line for ${role}`).toBeDefined();
  return last!.rolePid!;
}

const PHOTO = readFileSync(join(CORPUS, 'photos', 'Aqua.jpg'));

/** sha256 of what each upload stored (the origin strips metadata: not the bytes sent) */
const stored = new Map<string, string>();

async function upload(s: AllInOne): Promise<string> {
  const res = await fetch(`${s.origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...s.uploadAuth }, body: new Uint8Array(PHOTO) });
  const text = await res.text();
  expect(res.status, text).toBe(201);
  const file = (JSON.parse(text) as { files: Array<{ fid: string; sha256: string }> }).files[0]!;
  stored.set(file.fid, file.sha256);
  return file.fid;
}

async function readsBack(s: AllInOne, fid: string): Promise<boolean> {
  const res = await fetch(`${s.origin}/${fid}`);
  const body = Buffer.from(await res.arrayBuffer());
  return res.status === 200 && createHash('sha256').update(body).digest('hex') === stored.get(fid);
}

/** GET on a connection of its own (closed after the answer). */
function freshGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject);
  });
}

/** Waits until `role` serves with a pid other than `old`, and returns it. */
async function restarted(s: AllInOne, role: string, old: number): Promise<number> {
  return waitFor(`${role} restarted`, () => {
    const pid = servingPid(s, role);
    return pid !== old ? pid : undefined;
  }, 120_000, 200);
}

describe('ugcfs server supervises a process per role', () => {
  let s: AllInOne | undefined;
  afterAll(async () => s?.stop());

  it('runs each role in its own process, the origin with the workers asked for', async () => {
    s = await startAllInOne({ args: ['--origin-workers', '2'] });
    const listening = jsonLines(s).find((l) => l.name === 'server' && l.msg === 'listening')!;
    expect(listening.originWorkers).toBe(2);
    const pids = listening.pids as Record<string, number>;
    expect(Object.keys(pids).sort()).toEqual(['dataserver:ds-1', 'dataserver:ds-2', 'dataserver:ds-3', 'nameserver', 'origin']);
    const distinct = new Set([s.proc.child.pid, ...Object.values(pids)]);
    expect(distinct.size).toBe(6);
    for (const pid of Object.values(pids)) expect(alive(pid)).toBe(true);
    // The origin's two workers log with pids of their own, neither the supervisor's nor a role's.
    // (their lines may come after the supervisor's: each process writes its log asynchronously)
    const workers = await waitFor('lines of both origin workers', () => {
      const seen = new Set(jsonLines(s!).filter((l) => l.name === 'origin' && typeof l.worker === 'number').map((l) => l.pid));
      return seen.size === 2 ? seen : undefined;
    }, 30_000);
    for (const w of workers) expect(distinct.has(w!)).toBe(false);
    // Each role runs its own command, with the secrets in its environment, not on its command
    // line (which `ps` shows every user).
    for (const [role, pid] of Object.entries(pids)) {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      expect(cmdline, role).toContain(role.split(':')[0]);
      for (const secret of Object.values(s.secrets)) expect(cmdline.join(' '), role).not.toContain(secret);
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (role === 'origin') {
        // the origins' credential only: files, never blocks or cluster operations
        expect(environ).toContain(`UGCFS_ORIGIN_SECRET=${s.secrets.UGCFS_ORIGIN_SECRET}`);
        expect(environ.some((e) => e.startsWith('UGCFS_CLUSTER_SECRET='))).toBe(false);
      } else expect(environ, role).toContain(`UGCFS_CLUSTER_SECRET=${s.secrets.UGCFS_CLUSTER_SECRET}`);
    }
    // Each role's own 'listening' line is the supervisor's to read: only one reaches the output.
    expect(jsonLines(s).filter((l) => l.msg === 'listening')).toHaveLength(1);
  }, 180_000);

  it('restarts a SIGKILLed data server on its URL; reads go on meanwhile', async () => {
    const fid = await upload(s!);
    expect(await readsBack(s!, fid)).toBe(true);
    const old = servingPid(s!, 'dataserver:ds-1');
    process.kill(old, 'SIGKILL');
    // Replicas 2: the other copy answers while ds-1 is down.
    expect(await readsBack(s!, fid)).toBe(true);
    const pid = await restarted(s!, 'dataserver:ds-1', old);
    expect(alive(old)).toBe(false);
    const exit = jsonLines(s!).find((l) => l.msg === 'role exited; restarting it' && l.role === 'dataserver:ds-1');
    expect(exit).toMatchObject({ name: 'server', rolePid: old, signal: 'SIGKILL', code: null });
    expect(exit!.restartInMs).toBeGreaterThan(0);
    const again = jsonLines(s!).filter((l) => l.msg === 'role serving' && l.role === 'dataserver:ds-1').pop()!;
    expect(again).toMatchObject({ rolePid: pid, url: s!.dataservers[0], restarted: true });
    expect((await fetch(`${s!.dataservers[0]}/healthz`)).status).toBe(200);
    const after = await upload(s!);
    expect(await readsBack(s!, after)).toBe(true);
    expect(await readsBack(s!, fid)).toBe(true);
  }, 180_000);

  it('restarts a SIGKILLed origin on its URL, with its workers', async () => {
    const fid = await upload(s!);
    const variant = await fetch(`${s!.origin}/${fid}?w=64`);
    expect(variant.status).toBe(200);
    await variant.arrayBuffer();
    const old = servingPid(s!, 'origin');
    process.kill(old, 'SIGKILL');
    await restarted(s!, 'origin', old);
    expect(jsonLines(s!).find((l) => l.msg === 'role exited; restarting it' && l.role === 'origin')).toMatchObject({ rolePid: old, signal: 'SIGKILL' });
    await waitFor('the restarted origin to answer', async () => (await fetch(`${s!.origin}/healthz`)).status === 200, 60_000);
    expect(await readsBack(s!, fid)).toBe(true);
    expect((await fetch(`${s!.origin}/${fid}?w=64`)).status).toBe(200);
    expect(await readsBack(s!, await upload(s!))).toBe(true);
  }, 180_000);

  it('a delete made around the origin (`ugcfs rm`) reaches every origin worker within 5 s', async () => {
    const fid = await upload(s!);
    // Each request on a connection of its own: the origin's primary hands connections to its
    // two workers in turn, so two reads in a row are one per worker (and so are two /healthz,
    // which name the worker that answered).
    const workersSeen = new Set<unknown>();
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 2; j++) expect((await freshGet(`${s!.origin}/${fid}`)).status).toBe(200);
      for (let j = 0; j < 2; j++) workersSeen.add((JSON.parse((await freshGet(`${s!.origin}/healthz`)).body) as { worker?: number }).worker);
    }
    expect([...workersSeen].sort()).toEqual([0, 1]);
    const rm = await run(['rm', fid], { env: { ...s!.cliEnv, UGCFS_NAMESERVER: s!.nameserver } });
    expect(rm.code, rm.stderr).toBe(0);
    await sleep(5_500);
    for (let i = 0; i < 6; i++) expect((await freshGet(`${s!.origin}/${fid}`)).status).toBe(404);
  }, 120_000);

  it('stops the roles in order on SIGTERM, exits 0 and leaves no process behind', async () => {
    const pids = loggedPids(s!.proc);
    // roles, restarted roles and the origin's workers, old and new
    expect(pids.size).toBeGreaterThanOrEqual(9);
    expect(await s!.proc.kill('SIGTERM')).toBe(0);
    await waitFor('every role and worker to be gone', () => [...pids].every((p) => !alive(p)), 30_000);
    const stopped = jsonLines(s!).filter((l) => l.msg === 'role stopped');
    expect(stopped.map((l) => l.code)).toEqual([0, 0, 0, 0, 0]);
    const order = stopped.map((l) => l.role);
    expect(order[0]).toBe('origin');
    expect(order.slice(1, 4).sort()).toEqual(['dataserver:ds-1', 'dataserver:ds-2', 'dataserver:ds-3']);
    expect(order[4]).toBe('nameserver');
    // No role was restarted while stopping.
    expect(jsonLines(s!).filter((l) => l.msg === 'role exited; restarting it')).toHaveLength(2);
  }, 180_000);
});

describe('a terminal Ctrl-C, which reaches every process of the group', () => {
  const tmp = tempDir('ugcfs-aio-ctrl-c-');
  afterAll(() => tmp.cleanup());

  it('stops the roles in order through the supervisor and exits 0', async () => {
    // setsid: the server leads a process group of its own, as a shell job does, so SIGINT to
    // the group is what a terminal sends on Ctrl-C.
    const args = ['server', '--data', join(tmp.dir, 'data'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0', '--fsync=false', '--dataservers', '2', '--origin-workers', '2'];
    const p = await startReady([process.execPath, ...NODE_FLAGS, BIN, ...args], { exec: 'setsid', cwd: ROOT, env: { ...process.env, UGCFS_LOG_LEVEL: 'info' }, label: 'setsid ugcfs server', timeoutMs: 150_000 });
    const group = p.child.pid!;
    const lines = () => p.lines.filter((l) => l[0] === '{').map((l) => JSON.parse(l) as Line);
    await waitFor('lines of both origin workers', () => new Set(lines().filter((l) => l.name === 'origin' && typeof l.worker === 'number').map((l) => l.pid)).size === 2, 30_000);
    // the roles (by the supervisor's listening line) and the origin's workers (by their own lines)
    const roles = Object.values(lines().find((l) => l.name === 'server' && l.msg === 'listening')!.pids as Record<string, number>);
    const pids = new Set([...roles, ...lines().filter((l) => l.name === 'origin' && typeof l.worker === 'number').map((l) => l.pid!)]);
    expect(pids.size).toBe(6);
    process.kill(-group, 'SIGINT');
    expect(await p.exited).toBe(0);
    await waitFor('every role and worker to be gone', () => [...pids].every((pid) => !alive(pid)), 30_000);
    // Each role stopped on the supervisor's SIGTERM, in order; none on the SIGINT it got too.
    const shutdowns = lines().filter((l) => l.msg === 'shutting down' && l.worker === undefined);
    expect(shutdowns.map((l) => [l.name, l.sig])).toEqual([
      ['server', 'SIGINT'],
      ['origin', 'SIGTERM'],
      ...[...shutdowns.slice(2, 4)].map((l) => [l.name, 'SIGTERM']),
      ['nameserver', 'SIGTERM'],
    ]);
    expect(shutdowns.slice(2, 4).map((l) => l.name).sort()).toEqual(['dataserver:ds-1', 'dataserver:ds-2']);
    expect(lines().filter((l) => l.msg === 'role stopped').map((l) => l.code)).toEqual([0, 0, 0, 0]);
    expect(lines().some((l) => l.msg === 'role exited; restarting it')).toBe(false);
  }, 180_000);
});

describe('the roles of ugcfs server do not outlive it', () => {
  it('stop themselves when the supervisor is SIGKILLed', async () => {
    const s = await startAllInOne({ args: ['--origin-workers', '2', '--dataservers', '1', '--replicas', '1'] });
    try {
      // the name server, the data server and the origin's two workers (the origin's primary
      // logs nothing of its own); the workers' lines may come after the supervisor's
      const pids = await waitFor('lines of both origin workers', () => {
        const seen = loggedPids(s.proc);
        return seen.size >= 4 ? seen : undefined;
      }, 30_000);
      expect(await s.proc.kill('SIGKILL')).toBe(null);
      await waitFor('every role and worker to be gone', () => [...pids].every((p) => !alive(p)), 60_000);
    } finally {
      await s.stop();
    }
  }, 180_000);
});
