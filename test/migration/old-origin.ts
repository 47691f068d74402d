// nginx from Debian as the "old origin" the migration reads from: a static file server on
// a loopback port, started and stopped by the tests. Tests skip (with this reason) when the
// nginx package is not installed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

const NGINX_CANDIDATES = ['/usr/sbin/nginx', 'nginx'];

function findNginx(): string | undefined {
  for (const bin of NGINX_CANDIDATES) {
    const r = spawnSync(bin, ['-v'], { stdio: 'ignore' });
    if (r.status === 0) return bin;
  }
  return undefined;
}

export const NGINX = findNginx();
export const NGINX_MISSING = NGINX ? '' : 'nginx is not installed (Debian package nginx or nginx-light); old-origin tests skipped';

export interface OldOrigin {
  url: string;
  stop(): Promise<void>;
}

/** Serves `root` over HTTP with nginx; `dir` holds its config, pid and logs. */
export async function startOldOrigin(root: string, dir: string): Promise<OldOrigin> {
  if (!NGINX) throw new Error(NGINX_MISSING);
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  // As root, nginx workers would drop to "nobody", who cannot read a 0700 temp dir.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  writeFileSync(
    conf,
    `daemon off;\n${user}worker_processes 1;\npid ${join(dir, 'nginx.pid')};\nerror_log ${join(dir, 'error.log')};\n` +
      `events { worker_connections 128; }\n` +
      `http {\n  access_log off;\n` +
      ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};\n`).join('') +
      `  default_type application/octet-stream;\n` +
      `  server { listen 127.0.0.1:${port}; root ${root}; }\n}\n`,
  );
  const child: ChildProcess = spawn(NGINX, ['-p', dir, '-c', conf], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('nginx to answer', async () => {
    if (child.exitCode !== null) throw new Error(`nginx exited with ${child.exitCode}`);
    const res = await fetch(url + '/').catch(() => undefined);
    return res !== undefined;
  }, 10_000, 50);
  return {
    url,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // SIGTERM, not SIGKILL: the master then takes its workers down with it.
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
