// Real processes for origin tests: a name server, data servers and origins on loopback,
// plus small HTTP helpers. Everything started here is SIGKILLed by stopAll().
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { CORPUS, start, tempDir, type Proc } from '../helpers/proc.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';

export { CORPUS };

export function corpus(rel: string): Buffer {
  return readFileSync(join(CORPUS, rel));
}

export interface Env {
  cluster: Cluster;
  procs: Proc[];
  cleanups: Array<() => void>;
}

/** A real cluster (name server + data servers) from test/helpers/cluster.ts. */
export async function startEnv(opts: { dataservers?: number } = {}): Promise<Env> {
  const cluster = await startCluster({ dataservers: opts.dataservers ?? 2, replicas: 2, racks: [''], blockSize: 8 * 1024 * 1024 });
  await cluster.waitForAlive();
  return { cluster, procs: [], cleanups: [] };
}

/**
 * The upload token every origin started here accepts unless the test's env names its own
 * UGCFS_UPLOAD_TOKENS: no origin trusts a loopback address, so uploads and deletes need one.
 */
export const UPLOAD_TOKEN = 'tok-origin-' + randomBytes(16).toString('hex');
/** The Authorization header of UPLOAD_TOKEN. */
export const UPLOAD_AUTH: Readonly<Record<string, string>> = Object.freeze({ authorization: `Bearer ${UPLOAD_TOKEN}` });

/** Starts `ugcfs origin` on the env's cluster; `extraEnv` may carry tokens (default UGCFS_UPLOAD_TOKENS = UPLOAD_TOKEN). */
export async function startOrigin(env: Env, args: string[] = [], extraEnv: Record<string, string> = {}): Promise<Proc> {
  const p = await start(['origin', '--nameserver', env.cluster.nameserver.url, '--port', '0', ...args], {
    env: { UGCFS_CLUSTER_SECRET: env.cluster.secret, UGCFS_UPLOAD_TOKENS: UPLOAD_TOKEN, ...extraEnv },
  });
  env.procs.push(p);
  return p;
}

export function scratchDir(env: Env): string {
  const t = tempDir('ugcfs-origin-');
  env.cleanups.push(t.cleanup);
  return t.dir;
}

export async function stopAll(env: Env | undefined): Promise<void> {
  if (!env) return;
  await Promise.all(env.procs.map((p) => p.kill('SIGKILL')));
  await env.cluster.stop();
  for (const c of env.cleanups) c();
}

/** Bytes the data servers report; settled = unchanged over several heartbeats (100 ms each). */
export async function storedBytes(env: Env): Promise<number> {
  const read = async () => (await env.cluster.status()).dataservers.reduce((n, d) => n + d.usedBytes, 0);
  let last = -1;
  for (;;) {
    await new Promise((r) => setTimeout(r, 400));
    const now = await read();
    if (now === last && now > 0) return now;
    last = now;
  }
}

export interface Res {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  json: () => any;
}

export async function http(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Res> {
  const r = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body });
  const body = Buffer.from(await r.body.arrayBuffer());
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return { status: r.statusCode, headers, body, json: () => JSON.parse(body.toString('utf8')) };
}

/** GET with the path sent exactly as given (no client-side URL normalisation of `..` or escapes). */
export function rawGet(origin: string, path: string): Promise<Res> {
  return rawRequest(origin, path);
}

/**
 * A request through node's http module with the path sent exactly as given; `localAddress`
 * sends it from another loopback address (another client, as the origin sees it).
 */
export function rawRequest(origin: string, path: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer; localAddress?: string } = {}): Promise<Res> {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, method: o.method ?? 'GET', headers: o.headers, ...(o.localAddress ? { localAddress: o.localAddress, agent: false } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(res.headers)) headers[k] = Array.isArray(v) ? v.join(', ') : String(v);
        resolve({ status: res.statusCode ?? 0, headers, body, json: () => JSON.parse(body.toString('utf8')) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Uploads one file as a raw body with `token` (default UPLOAD_TOKEN); returns the 201 file entry. */
export async function upload(origin: string, data: Buffer, token: string = UPLOAD_TOKEN): Promise<{ fid: string; url: string; size: number; mime: string; width: number; height: number; sha256: string }> {
  const headers = { 'content-type': 'application/octet-stream', authorization: `Bearer ${token}` };
  const r = await http(`${origin}/upload`, { method: 'POST', headers, body: data });
  if (r.status !== 201) throw new Error(`upload answered ${r.status}: ${r.body.toString('utf8').slice(0, 300)}`);
  return r.json().files[0];
}
