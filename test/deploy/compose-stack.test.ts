// The container stack for real: deploy/build-images.sh builds the three images (on local
// Debian bases from deploy/build-base.sh where Docker Hub cannot be reached), docker-compose.yml
// comes up as it ships (three etcd members, two name servers, three data servers, two origins,
// the nginx edge) with a fresh .env, and the test talks to it only through the ports it
// publishes on 127.0.0.1: uploads through the edge, fetches variants (sharp inside the image),
// SIGKILLs the data server holding the most of the files (`docker kill -s KILL`), reads every
// file back and uploads again, deletes a file and sees the origins purge it from the edge,
// stops everything gracefully, then tears it all down with its volumes.
//
// Slow (image builds, health-check chains): not part of `npm test`; `npm run test:containers`
// runs it (test/deploy/vitest.containers.config.ts), and .ci/run starts dockerd for it. It
// skips, saying why, where that config is not in use or no Docker engine answers.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeFid } from '../../src/wire/file-id.ts';
import { CORPUS, ROOT, waitFor } from '../helpers/proc.ts';
import { freePort } from '../helpers/ready-process.ts';

const DOCKER = process.env.DOCKER ?? 'docker';

/** `docker-compose` (Debian's 1.29) or, failing that, the `docker compose` plugin. */
function composeCommand(): string[] | undefined {
  if (spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0) return ['docker-compose'];
  if (spawnSync(DOCKER, ['compose', 'version'], { stdio: 'ignore' }).status === 0) return [DOCKER, 'compose'];
  return undefined;
}

function whyNot(): string | undefined {
  if (process.env.UGCFS_CONTAINER_TESTS !== '1') return 'runs only under `npm run test:containers` (image builds take minutes)';
  const info = spawnSync(DOCKER, ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 60_000 });
  if (info.error) return `no docker client (${info.error.message}); install Debian's docker.io`;
  if (info.status !== 0) return `no Docker engine answers: ${(info.stderr || info.stdout).trim().split('\n').at(-1)}`;
  if (!composeCommand()) return "neither docker-compose nor `docker compose` is installed (Debian's docker-compose)";
  return undefined;
}
const skipReason = whyNot();
if (skipReason) console.warn(`compose-stack: skipped: ${skipReason}`);

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}
/** Runs a command from the repository root with only the environment given (compose substitutes from it). */
function sh(cmd: string[], env: Record<string, string> = {}, timeoutMs = 30 * 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd[0]!, cmd.slice(1), {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', ...(process.env.DOCKER_HOST ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
async function ok(cmd: string[], env: Record<string, string> = {}, timeoutMs?: number): Promise<string> {
  const r = await sh(cmd, env, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} exited ${r.code}\n${r.stdout.slice(-4000)}\n${r.stderr.slice(-4000)}`);
  return r.stdout;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe.skipIf(skipReason !== undefined)(`docker-compose.yml, built and run${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const project = `ugcfs-test-${randomBytes(3).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'ugcfs-compose-'));
  const envFile = join(dir, 'compose.env');
  const secret = () => randomBytes(32).toString('hex');
  const secrets = { cluster: secret(), origin: secret(), upload: secret(), admin: secret() };
  const ports = { edge: 0, ns1: 0, ns2: 0 };
  let compose: string[] = [];
  let env: Record<string, string> = {};
  let up = false;

  const dc = (...args: string[]) => [...compose, '-p', project, '--env-file', envFile, '-f', join(ROOT, 'docker-compose.yml'), ...args];
  const containerOf = async (service: string) => (await ok(dc('ps', '-q', service), env)).trim();
  const edge = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${ports.edge}${path}`, { ...init, signal: AbortSignal.timeout(120_000) });

  beforeAll(async () => {
    compose = composeCommand()!;
    // Images first (their own timings and sizes go to the log), then the stack.
    const built = await sh(['deploy/build-images.sh'], { DOCKER }, 50 * 60_000);
    console.log(built.stderr.trim());
    if (built.code !== 0) throw new Error(`deploy/build-images.sh exited ${built.code}`);
    env = Object.fromEntries(built.stdout.trim().split('\n').at(-1)!.split(' ').map((kv) => kv.split('=') as [string, string]));
    ports.edge = await freePort();
    ports.ns1 = await freePort();
    ports.ns2 = await freePort();
    writeFileSync(
      envFile,
      [
        `COMPOSE_PROJECT_NAME=${project}`,
        `UGCFS_CLUSTER_SECRET=${secrets.cluster}`,
        `UGCFS_ORIGIN_SECRET=${secrets.origin}`,
        `UGCFS_UPLOAD_TOKENS=${secrets.upload}`,
        `UGCFS_ADMIN_TOKEN=${secrets.admin}`,
        `UGCFS_EDGE_PORT=${ports.edge}`,
        `UGCFS_NAMESERVER_1_PORT=${ports.ns1}`,
        `UGCFS_NAMESERVER_2_PORT=${ports.ns2}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const t0 = Date.now();
    up = true;
    // Compose waits for each health check in the chain etcd → name servers → data servers →
    // origins → edge; an unhealthy one fails `up`.
    const r = await sh(dc('up', '-d', '--no-build'), env, 20 * 60_000);
    if (r.code !== 0) {
      const logs = await sh(dc('logs', '--no-color', '--tail', '40'), env);
      throw new Error(`compose up exited ${r.code}\n${r.stderr.slice(-3000)}\n${logs.stdout.slice(-12000)}`);
    }
    console.log(`compose-stack: up in ${Math.round((Date.now() - t0) / 1000)} s; edge on 127.0.0.1:${ports.edge}`);
  }, 75 * 60_000);

  afterAll(async () => {
    if (up) {
      const down = await sh(dc('down', '-v', '--remove-orphans', '--timeout', '30'), env, 10 * 60_000);
      if (down.code !== 0) console.warn(`compose-stack: down exited ${down.code}: ${down.stderr.slice(-2000)}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }, 15 * 60_000);

  it('publishes only the edge and the name servers, on 127.0.0.1', async () => {
    const ids = (await ok(dc('ps', '-q'), env)).trim().split('\n');
    expect(ids).toHaveLength(11);
    const bound: string[] = [];
    for (const id of ids) {
      const map = JSON.parse(await ok([DOCKER, 'inspect', '-f', '{{json .NetworkSettings.Ports}}', id])) as Record<string, Array<{ HostIp: string; HostPort: string }> | null>;
      for (const b of Object.values(map).flat()) if (b) bound.push(`${b.HostIp}:${b.HostPort}`);
    }
    expect(bound.sort()).toEqual([ports.edge, ports.ns1, ports.ns2].map((p) => `127.0.0.1:${p}`).sort());
    // The edge keeps its own routes to itself and the operator's ones from the public.
    expect((await edge('/metrics')).status).toBe(404);
    expect((await edge('/healthz')).status).toBe(404);
  });

  it('uploads through the edge, serves variants, and reads everything back after a data server is SIGKILLed', async () => {
    const photos = readdirSync(join(CORPUS, 'photos')).filter((f) => f.endsWith('.jpg')).sort().slice(0, 8);
    const bytes = photos.map((f) => readFileSync(join(CORPUS, 'photos', f)));
    const form = new FormData();
    bytes.forEach((b, i) => form.append('file', new Blob([b], { type: 'image/jpeg' }), photos[i]));
    const auth = { authorization: `Bearer ${secrets.upload}` };
    // Without a token the edge passes the refusal on.
    expect((await edge('/upload', { method: 'POST', body: new Blob([bytes[0]!]) })).status).toBe(401);
    const res = await edge('/upload', { method: 'POST', headers: auth, body: form });
    expect(res.status, await res.clone().text()).toBe(201);
    const files = ((await res.json()) as { files: Array<{ fid: string; sha256: string; width: number; height: number }> }).files;
    expect(files).toHaveLength(photos.length);

    // A preset variant, resized by sharp in the origin's container, then from the edge's cache.
    const first = files[0]!;
    const thumb = await edge(`/${first.fid}.jpg?preset=thumb`);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');
    expect(thumb.headers.get('x-edge-cache')).toBe('MISS');
    const meta = await sharp(Buffer.from(await thumb.arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([160, 160]);
    const again = await edge(`/${first.fid}.jpg?preset=thumb`);
    expect(again.headers.get('x-edge-cache')).toBe('HIT');
    await again.arrayBuffer();
    // Strict mode: a size not allowed is refused at the origin.
    expect((await edge(`/${first.fid}.jpg?w=123`)).status).toBe(403);

    // Where the copies are, from a name server's published port: the data server holding the
    // most files (with replicas 2 of 3, every file has a copy elsewhere) is the one killed.
    const holders = new Map<string, string[]>();
    for (const f of files) {
      const block = decodeFid(f.fid).block;
      const loc = await waitFor(`location of block ${block}`, async () => {
        for (const port of [ports.ns1, ports.ns2]) {
          const r = await fetch(`http://127.0.0.1:${port}/blocks/${block}`, { headers: { 'x-ugcfs-secret': secrets.cluster } }).catch(() => undefined);
          if (r?.ok) return (await r.json()) as { replicas: Array<{ id: string }> };
        }
        return undefined;
      }, 60_000, 500);
      expect(loc.replicas.length, `block ${block}`).toBe(2);
      for (const ds of loc.replicas) holders.set(ds.id, [...(holders.get(ds.id) ?? []), f.fid]);
    }
    const [victim, held] = [...holders.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
    expect(held.some((fid) => fid !== first.fid), 'the victim holds a file not read yet').toBe(true);
    const service = `dataserver-${victim.replace(/^ds-/, '')}`;
    const id = await containerOf(service);
    await ok([DOCKER, 'kill', '-s', 'KILL', id]);
    const state = JSON.parse(await ok([DOCKER, 'inspect', '-f', '{{json .State}}', id])) as { ExitCode: number; Running: boolean; Restarting: boolean };
    expect(state.Running && !state.Restarting).toBe(false);
    expect(state.ExitCode).toBe(137);

    // Every original, byte for byte: none was read before, so each goes edge → origin → a
    // data server, the killed one's files from their other copy.
    for (const f of files) {
      const r = await edge(`/${f.fid}.jpg`);
      expect(r.status, f.fid).toBe(200);
      expect(r.headers.get('x-edge-cache'), f.fid).toBe('MISS');
      expect(sha256(new Uint8Array(await r.arrayBuffer())), f.fid).toBe(f.sha256);
    }
    // A new variant of a file the killed server held.
    const other = files.find((f) => held.includes(f.fid) && f.fid !== first.fid)!;
    const card = await edge(`/${other.fid}.jpg_400x400.jpg`);
    expect(card.status).toBe(200);
    const cardMeta = await sharp(Buffer.from(await card.arrayBuffer())).metadata();
    expect(Math.max(cardMeta.width!, cardMeta.height!)).toBe(Math.min(400, Math.max(other.width, other.height)));

    // Uploads go on with one data server down (once the name server has noticed it).
    const late = await waitFor('an upload with a data server down', async () => {
      const r = await edge('/upload', { method: 'POST', headers: { ...auth, 'content-type': 'image/jpeg' }, body: new Blob([bytes[1]!]) });
      return r.status === 201 ? ((await r.json()) as { files: Array<{ fid: string; sha256: string }> }).files[0] : (await r.arrayBuffer(), undefined);
    }, 120_000, 2000);
    const back = await edge(`/${late.fid}.jpg`);
    expect(sha256(new Uint8Array(await back.arrayBuffer()))).toBe(late.sha256);

    // The leading name server notices the loss (--dead-after-ms 10000); the killed server comes
    // back with its volume and rejoins.
    const alive = (n: number) => async () => {
      for (const port of [ports.ns1, ports.ns2]) {
        const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
        if (r?.ok && ((await r.json()) as { dataserversAlive?: number }).dataserversAlive === n) return true;
      }
      return false;
    };
    await waitFor('the name server counts two data servers', alive(2), 120_000, 1000);
    await ok([DOCKER, 'start', id]);
    await waitFor('three data servers alive again', alive(3), 180_000, 1000);
    const back2 = await edge(`/${late.fid}.jpg`);
    expect(back2.status).toBe(200);
    await back2.arrayBuffer();
  }, 20 * 60_000);

  it('a delete made inside the cluster network leaves the edge in seconds: the origins purge it', async () => {
    const photo = readdirSync(join(CORPUS, 'photos')).filter((f) => f.endsWith('.jpg')).sort()[0]!;
    const res = await edge('/upload', { method: 'POST', headers: { authorization: `Bearer ${secrets.upload}` }, body: new Blob([readFileSync(join(CORPUS, 'photos', photo))]) });
    expect(res.status).toBe(201);
    const { fid } = ((await res.json()) as { files: Array<{ fid: string }> }).files[0]!;
    const urls = [`/${fid}.jpg`, `/${fid}.jpg?preset=thumb`];
    for (const url of urls) {
      await (await edge(url)).arrayBuffer();
      const hit = await edge(url);
      expect(hit.headers.get('x-edge-cache'), url).toBe('HIT');
      await hit.arrayBuffer();
    }
    // The operator's delete, as docs/OPERATIONS-GUIDE.md gives it: from a name server's
    // container (it holds the cluster secret). Without a purge the edge would serve its
    // copies for 10 more minutes.
    const out = await ok(dc('exec', '-T', 'nameserver-1', '/app/bin/ugcfs.mjs', 'rm', fid, '--nameserver', 'http://nameserver-1:7000,http://nameserver-2:7000'), env);
    expect(out).toContain(`deleted ${fid}`);
    for (const url of urls) {
      await waitFor(`${url} gone from the edge`, async () => {
        const r = await edge(url);
        await r.arrayBuffer();
        return r.status === 404;
      }, 120_000, 1000);
    }
  });

  it('stops gracefully: SIGTERM (SIGQUIT for nginx) ends every container with exit 0', async () => {
    await ok(dc('stop', '--timeout', '30'), env, 10 * 60_000);
    const ids = (await ok(dc('ps', '-q'), env)).trim().split('\n');
    const stopped: Array<{ id: string; name: string; code: number }> = [];
    for (const id of ids) {
      const [name, code] = (await ok([DOCKER, 'inspect', '-f', '{{.Name}} {{.State.ExitCode}}', id])).trim().split(' ');
      stopped.push({ id, name: name!.replace(`/${project}_`, ''), code: Number(code) });
    }
    expect(stopped).toHaveLength(11);
    const failed = stopped.filter((c) => c.code !== 0);
    const logs = await Promise.all(failed.map(async (c) => {
      const r = await sh([DOCKER, 'logs', '--tail', '30', c.id]);
      return `${c.name} exited ${c.code}:\n${r.stdout.slice(-3000)}${r.stderr.slice(-3000)}`;
    }));
    expect(failed.map((c) => c.name), logs.join('\n')).toEqual([]);
  }, 20 * 60_000);
});
