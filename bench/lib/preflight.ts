// What the bench needs from the machine. It installs nothing: it names the Debian packages
// that are missing, and the comparisons that need them are skipped (and say so in the doc).
// Free disk is checked up front: a full disk otherwise shows up mid-section as a LevelDB
// error that does not say the disk is full.
import { existsSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { runCommand } from './spawn.ts';

export interface Tools {
  nginx?: string;
  nginxVersion?: string;
  /** path of ngx_http_image_filter_module.so, when installed */
  imageFilterModule?: string;
  /** nginx was built with --with-http_dav_module (Debian's is) */
  dav: boolean;
  wrk?: string;
  wrkVersion?: string;
  /** locks files in memory (the scale section's data servers) */
  vmtouch?: string;
  /** Debian packages to install for the skipped comparisons */
  missing: { pkg: string; for: string }[];
}

async function which(name: string): Promise<string | undefined> {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin']) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

export async function detectTools(): Promise<Tools> {
  const tools: Tools = { dav: false, missing: [] };
  tools.nginx = await which('nginx');
  if (tools.nginx) {
    const v = await runCommand(tools.nginx, ['-V'], { timeoutMs: 5000 });
    const text = v.stdout + v.stderr;
    tools.nginxVersion = /nginx version: nginx\/(\S+)/.exec(text)?.[1];
    tools.dav = text.includes('--with-http_dav_module');
    const modDir = /--modules-path=(\S+)/.exec(text)?.[1] ?? '/usr/lib/nginx/modules';
    const so = join(modDir, 'ngx_http_image_filter_module.so');
    if (text.includes('--with-http_image_filter_module=dynamic')) {
      if (existsSync(so)) tools.imageFilterModule = so;
    } else if (text.includes('--with-http_image_filter_module')) {
      tools.imageFilterModule = 'builtin';
    }
    if (!tools.imageFilterModule) tools.missing.push({ pkg: 'libnginx-mod-http-image-filter', for: 'nginx image_filter resize comparison' });
    if (!tools.dav) tools.missing.push({ pkg: 'nginx (a build with the dav module, e.g. Debian\'s)', for: 'nginx WebDAV PUT comparison' });
  } else {
    tools.missing.push({ pkg: 'nginx', for: 'every nginx comparison (static, WebDAV PUT)' });
    tools.missing.push({ pkg: 'libnginx-mod-http-image-filter', for: 'nginx image_filter resize comparison' });
  }
  tools.wrk = await which('wrk');
  if (tools.wrk) {
    const v = await runCommand(tools.wrk, ['-v'], { timeoutMs: 5000 });
    tools.wrkVersion = /wrk (\S+)/.exec(v.stdout + v.stderr)?.[1];
  } else {
    tools.missing.push({ pkg: 'wrk', for: 'HTTP read throughput (reads, cache hits, scale)' });
  }
  tools.vmtouch = await which('vmtouch');
  if (!tools.vmtouch) tools.missing.push({ pkg: 'vmtouch', for: 'holding the scale section\'s files in memory, so its reads stay page-cache reads where the kernel pages out idle memory' });
  return tools;
}

export function missingMessage(tools: Tools): string {
  if (tools.missing.length === 0) return '';
  const pkgs = [...new Set(tools.missing.map((m) => m.pkg.split(' ')[0]!))];
  return [
    'bench: some peers are missing; these comparisons will be skipped:',
    ...tools.missing.map((m) => `  - ${m.pkg}: ${m.for}`),
    `install them with: apt-get install ${pkgs.join(' ')}`,
  ].join('\n');
}

/** '' when `dir` has at least `needGiB` free, else the sentence refusing the run. */
export async function freeDiskMessage(dir: string, needGiB: number): Promise<string> {
  const fs = await statfs(dir);
  // bavail, not bfree: the blocks reserved for root are not ours to fill.
  const freeGiB = (fs.bavail * fs.bsize) / 2 ** 30;
  if (freeGiB >= needGiB) return '';
  return `bench: ${dir}, where the sections write their scratch work, has ${freeGiB.toFixed(1)} GiB free and the bench needs ${needGiB} GiB; free some space, point TMPDIR elsewhere, or lower the bar with --min-free-gib N.`;
}
