// Runs deploy/nginx-edge.conf, the compose file's CDN edge, with real nginx in front of two
// real origins (with --peers) on a real cluster. Only what cannot work outside Docker is
// changed: service names and ports become loopback ports, the cache goes to a temp dir.
// Every rewrite must hit, so the config cannot drift away from what the tests run.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { CORPUS, ROOT, start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';

export { CORPUS };

/** the nginx binary (Debian package nginx or nginx-light), if installed */
export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx'].find((p) => existsSync(p));
export const NO_NGINX_REASON = NGINX ? '' : ' (SKIPPED: nginx is not installed; apt-get install nginx-light)';
if (!NGINX) console.warn(`edge tests${NO_NGINX_REASON}`);
export const EDGE_CONF = join(ROOT, 'deploy', 'nginx-edge.conf');

export interface EdgeEnv {
  cluster: Cluster;
  origins: Proc[];
  /** http://127.0.0.1:<port> of the public edge server */
  edge: string;
  edgePort: number;
  /** nginx's error log (rate-limit rejections are logged there) */
  errorLog: string;
  /** requests the origins answered, /metrics scrapes left out; `clientOnly` also leaves out origin-to-origin /_internal/* calls */
  originRequests(opts?: { clientOnly?: boolean }): Promise<number>;
  stop(): Promise<void>;
}

export interface EdgeOptions {
  /** the flags of origin i (0 or 1) listening on `port`, given the loopback URLs of both */
  originArgs(i: number, port: number, urls: string[], nameserver: string, dir: string): string[];
  env?: Record<string, string>;
}

function rewrite(conf: string, from: string, to: string, all = false): string {
  if (!conf.includes(from)) throw new Error(`deploy/nginx-edge.conf no longer contains ${JSON.stringify(from)}: update test/deploy/edge-env.ts`);
  return all ? conf.replaceAll(from, to) : conf.replace(from, to);
}

export async function startEdge(opts: EdgeOptions): Promise<EdgeEnv> {
  const tmp = tempDir('ugcfs-edge-');
  const d = tmp.dir;
  const cluster = await startCluster({ dataservers: 2, racks: ['a', 'b'] });
  const origins: Proc[] = [];
  let nginx: ChildProcess | undefined;
  const stop = async () => {
    nginx?.kill('SIGKILL');
    for (const o of origins) await o.kill('SIGKILL');
    await cluster.stop();
    tmp.cleanup();
  };
  try {
    const ports = [await freePort(), await freePort()];
    const urls = ports.map((p) => `http://127.0.0.1:${p}`);
    for (const [i, port] of ports.entries()) {
      const dir = join(d, `origin-${i + 1}`);
      mkdirSync(dir);
      origins.push(await start(opts.originArgs(i, port, urls, cluster.nameserver.url, dir), { env: { UGCFS_CLUSTER_SECRET: cluster.secret, ...opts.env } }));
    }
    const edgePort = await freePort();
    const missPort = await freePort();
    let conf = readFileSync(EDGE_CONF, 'utf8');
    conf = rewrite(conf, 'origin-1:8080', `127.0.0.1:${ports[0]}`);
    conf = rewrite(conf, 'origin-2:8080', `127.0.0.1:${ports[1]}`);
    conf = conf.replace(/proxy_cache_path \S+/, `proxy_cache_path ${join(d, 'cache')}`);
    conf = rewrite(conf, 'listen 80;', `listen 127.0.0.1:${edgePort};`);
    // the internal miss server: its listen and the upstream pointing at it
    conf = rewrite(conf, '127.0.0.1:8081', `127.0.0.1:${missPort}`, true);
    mkdirSync(join(d, 'cache'));
    writeFileSync(join(d, 'edge.conf'), conf);
    const errorLog = join(d, 'error.log');
    writeFileSync(
      join(d, 'nginx.conf'),
      `daemon off; master_process off; worker_processes 1; pid ${d}/nginx.pid; error_log ${errorLog} warn; events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi; include ${d}/edge.conf; }`,
    );
    nginx = spawn(NGINX!, ['-p', d, '-c', join(d, 'nginx.conf'), '-e', errorLog], { stdio: 'ignore' });
    const edge = `http://127.0.0.1:${edgePort}`;
    await waitFor('nginx edge', async () => (await fetch(`${edge}/edge-healthz`)).status === 200);
    const originRequests = async (o: { clientOnly?: boolean } = {}) => {
      let n = 0;
      for (const origin of origins) {
        const m = await scrapeMetrics(origin.url);
        for (const s of m.samples) {
          if (s.name !== 'ugcfs_http_requests_total' || s.labels.route === '/metrics') continue;
          if (o.clientOnly && s.labels.route?.startsWith('/_internal')) continue;
          n += s.value;
        }
      }
      return n;
    };
    return { cluster, origins, edge, edgePort, errorLog, originRequests, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * One request with node:http, which (unlike fetch) can send from another loopback address
 * (`from: '127.0.0.2'`, a second client to the edge) and can stop after the headers
 * (`declaredLength` without a body: what nginx answers to a Content-Length alone).
 */
export function raw(url: string, o: { method?: string; headers?: Record<string, string>; body?: Buffer; from?: string; declaredLength?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers = { ...o.headers };
    if (o.declaredLength !== undefined) headers['content-length'] = String(o.declaredLength);
    // the path exactly as written (new URL would resolve /x/../ and the like)
    const u = new URL(url);
    const path = url.slice(u.origin.length) || '/';
    const req = request({ host: u.hostname, port: u.port, path, method: o.method ?? 'GET', headers, localAddress: o.from, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) });
        req.destroy();
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (o.declaredLength !== undefined) {
      req.flushHeaders();
      return; // never sends the body; the answer comes first or the test fails on its timeout
    }
    req.end(o.body);
  });
}
