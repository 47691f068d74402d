// nginx as the peer users would pick instead: static files, WebDAV PUT and image_filter
// resizes, from one generated config in a temp dir on a loopback port. The settings are
// what a tuned production nginx would use (sendfile, open_file_cache, long keep-alive,
// no access log), so the comparison is against nginx at its best, not a strawman.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { userInfo } from 'node:os';
import { freePort } from '../../test/helpers/ready-process.ts';
import type { Tools } from './preflight.ts';

export interface NginxOptions {
  /** working dir (config, pid, temp bodies, logs) */
  dir: string;
  /** served read-only at /static/ */
  staticRoot?: string;
  /** WebDAV PUT target at /dav/ */
  davRoot?: string;
  /** image_filter source images at /resize/<name>?w=N */
  resizeRoot?: string;
  /** number or 'auto' (one per core) */
  workers?: number | 'auto';
  jpegQuality?: number;
  /** serve HTTPS on this certificate and key (PEM files), as the ugcfs roles do under --tls */
  tls?: { cert: string; key: string };
}

export interface Nginx {
  url: string;
  config: string;
  stop(): Promise<void>;
}

export function nginxConfig(tools: Tools, o: NginxOptions, port: number): string {
  const d = o.dir;
  const lines: string[] = [];
  if (tools.imageFilterModule && tools.imageFilterModule !== 'builtin' && o.resizeRoot) lines.push(`load_module ${tools.imageFilterModule};`);
  // As root, workers would drop to `nobody` and could not read the private temp dirs.
  if (process.getuid?.() === 0) lines.push(`user ${userInfo().username};`);
  lines.push(
    'daemon off;',
    'master_process on;',
    `worker_processes ${o.workers ?? 'auto'};`,
    `pid ${d}/nginx.pid;`,
    `error_log ${d}/error.log warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    '  sendfile on; tcp_nopush on; tcp_nodelay on;',
    '  keepalive_requests 10000000; keepalive_timeout 120s;',
    '  open_file_cache max=200000 inactive=120s; open_file_cache_valid 120s;',
    `  client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fastcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi;`,
    '  types { image/jpeg jpg jpeg; image/png png; image/webp webp; application/octet-stream bin; }',
    '  default_type application/octet-stream;',
    '  server {',
    `    listen 127.0.0.1:${port}${o.tls ? ' ssl' : ''} reuseport;`,
  );
  // A session cache as a production TLS nginx has; wrk's connections live for the whole run anyway.
  if (o.tls) lines.push(`    ssl_certificate ${o.tls.cert}; ssl_certificate_key ${o.tls.key}; ssl_session_cache shared:SSL:10m;`);
  if (o.staticRoot) lines.push(`    location /static/ { alias ${o.staticRoot}/; }`);
  if (o.davRoot) {
    lines.push(
      `    location /dav/ { alias ${o.davRoot}/; dav_methods PUT DELETE; create_full_put_path on; dav_access user:rw group:r all:r;`,
      '      client_max_body_size 64m; client_body_buffer_size 1m; }',
    );
  }
  if (o.resizeRoot && tools.imageFilterModule) {
    const q = o.jpegQuality ?? 80;
    lines.push(
      `    location /resize/ { alias ${o.resizeRoot}/; image_filter resize $arg_w -; image_filter_jpeg_quality ${q}; image_filter_webp_quality ${q};`,
      '      image_filter_buffer 64M; image_filter_interlace off; }',
    );
  }
  lines.push('  }', '}');
  return lines.join('\n') + '\n';
}

export async function startNginx(tools: Tools, o: NginxOptions): Promise<Nginx> {
  if (!tools.nginx) throw new Error('nginx is not installed');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(o.dir, sub), { recursive: true });
  const port = await freePort();
  const config = nginxConfig(tools, o, port);
  const confPath = join(o.dir, 'nginx.conf');
  writeFileSync(confPath, config);
  const child = spawn(tools.nginx, ['-p', o.dir, '-c', confPath, '-e', join(o.dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  // SIGTERM, not SIGKILL: a killed master would leave its workers listening.
  const onExit = () => child.kill('SIGTERM');
  process.once('exit', onExit);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) {
      const log = existsSync(join(o.dir, 'error.log')) ? readFileSync(join(o.dir, 'error.log'), 'utf8') : '';
      throw new Error(`nginx exited: ${stderr}${log}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`nginx did not listen: ${stderr}`); }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `${o.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    config,
    stop: async () => {
      process.removeListener('exit', onExit);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); res(true); });
    s.once('error', () => res(false));
  });
}
