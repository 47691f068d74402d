// Real nginx from Debian running deploy/nginx-edge.conf with deploy/nginx-edge-purge.conf
// beside it (the cache-purge module loaded), in front of test origins on loopback. Only what
// cannot work outside Docker is changed (service names and ports become loopback ports, the
// cache goes to a temp dir), and every rewrite must hit, so the shipped files are what runs.
// The cache is on disk, so stop() and start() again keep what the edge cached: an edge that
// was down comes back with its objects, as a real one does.
// Needs nginx and libnginx-mod-http-cache-purge; NGINX_PURGE_MISSING says which is not there.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, waitFor } from './proc.ts';
import { trackChild } from './ready-process.ts';
import { freePort } from './cluster.ts';

export const NGINX_BIN = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p));
export const PURGE_MODULE = ['/usr/lib/nginx/modules/ngx_http_cache_purge_module.so'].find((p) => existsSync(p));
/** why nginx purge tests cannot run here ('' when they can) */
export const NGINX_PURGE_MISSING = !NGINX_BIN ? 'nginx is not installed (apt-get install nginx)' : !PURGE_MODULE ? "nginx's cache-purge module is not installed (apt-get install libnginx-mod-http-cache-purge)" : '';

export interface NginxPurgeEdge {
  /** the public edge, http://127.0.0.1:<port> */
  url: string;
  /** the purge server, what the origins' --purge-edges names */
  purgeUrl: string;
  /** starts nginx (again) on the same ports and cache */
  start(): Promise<void>;
  /** SIGKILLs nginx; the cache on disk stays */
  stop(): Promise<void>;
  /** stop() and remove the temp dir */
  close(): Promise<void>;
}

function rewrite(conf: string, from: string, to: string, all = false): string {
  if (!conf.includes(from)) throw new Error(`${JSON.stringify(from)} is no longer in the shipped nginx edge config: update test/helpers/nginx-purge-edge.ts`);
  return all ? conf.replaceAll(from, to) : conf.replace(from, to);
}

/** Prepares the edge in front of the origins on `originPorts` (one or two; the shipped upstream names two). */
export async function nginxPurgeEdge(originPorts: number[]): Promise<NginxPurgeEdge> {
  if (NGINX_PURGE_MISSING) throw new Error(NGINX_PURGE_MISSING);
  const t = tempDir('ugcfs-nginx-purge-');
  const d = t.dir;
  const [edgePort, missPort, purgePort] = [await freePort(), await freePort(), await freePort()];
  let edge = readFileSync(join(ROOT, 'deploy', 'nginx-edge.conf'), 'utf8');
  edge = rewrite(edge, 'origin-1:8080', `127.0.0.1:${originPorts[0]}`);
  edge = rewrite(edge, 'origin-2:8080', `127.0.0.1:${originPorts[1] ?? originPorts[0]}`);
  edge = edge.replace(/proxy_cache_path \S+/, `proxy_cache_path ${join(d, 'cache')}`);
  edge = rewrite(edge, 'listen 80;', `listen 127.0.0.1:${edgePort};`);
  edge = rewrite(edge, '127.0.0.1:8081', `127.0.0.1:${missPort}`, true);
  edge = rewrite(edge, 'include nginx-edge-purge*.conf;', `include ${join(d, 'nginx-edge-purge.conf')};`);
  let purge = readFileSync(join(ROOT, 'deploy', 'nginx-edge-purge.conf'), 'utf8');
  purge = rewrite(purge, 'listen 8082;', `listen 127.0.0.1:${purgePort};`);
  mkdirSync(join(d, 'cache'));
  writeFileSync(join(d, 'edge.conf'), edge);
  writeFileSync(join(d, 'nginx-edge-purge.conf'), purge);
  const errorLog = join(d, 'error.log');
  writeFileSync(
    join(d, 'nginx.conf'),
    `load_module ${PURGE_MODULE}; daemon off; master_process off; worker_processes 1; pid ${d}/nginx.pid; error_log ${errorLog} warn; events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi; include ${d}/edge.conf; }`,
  );
  const url = `http://127.0.0.1:${edgePort}`;
  let child: ChildProcess | undefined;
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await gone;
  };
  const start = async () => {
    await stop();
    const c = spawn(NGINX_BIN!, ['-p', d, '-c', join(d, 'nginx.conf'), '-e', errorLog], { stdio: 'ignore' });
    trackChild(c);
    child = c;
    await waitFor(`nginx edge on ${url}: ${existsSync(errorLog) ? readFileSync(errorLog, 'utf8').slice(-2000) : ''}`, async () => (await fetch(`${url}/edge-healthz`).catch(() => undefined))?.status === 200, 20_000, 100);
  };
  return {
    url,
    purgeUrl: `http://127.0.0.1:${purgePort}`,
    start,
    stop,
    async close() {
      await stop();
      t.cleanup();
    },
  };
}
