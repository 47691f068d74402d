// A real Varnish edge for tests: varnishd in the foreground on a loopback port, with its own
// work directory, running deploy/varnish-edge.vcl with only its `backend default` pointed
// at the test's origin. Runs as root too: `-j none` keeps varnishd from switching to its
// own user (whose jail could not read the temp files), and the work directory is ours.
// Needs Debian's varnish and varnish-modules (vmod xkey); VARNISH_MISSING says which is not there.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, tempDir, waitFor } from './proc.ts';
import { trackChild } from './ready-process.ts';
import { freePort } from './cluster.ts';

export const VARNISHD = ['/usr/sbin/varnishd', '/usr/bin/varnishd', '/usr/local/sbin/varnishd'].find((p) => existsSync(p));
const XKEY = ['/usr/lib/x86_64-linux-gnu/varnish/vmods/libvmod_xkey.so', '/usr/lib/aarch64-linux-gnu/varnish/vmods/libvmod_xkey.so', '/usr/lib/varnish/vmods/libvmod_xkey.so'].find((p) => existsSync(p));
/** why Varnish tests cannot run here ('' when they can) */
export const VARNISH_MISSING = !VARNISHD ? 'varnishd is not installed (apt-get install varnish)' : !XKEY ? 'vmod xkey is not installed (apt-get install varnish-modules)' : '';
export const EDGE_VCL = join(ROOT, 'deploy', 'varnish-edge.vcl');

export interface VarnishEdge {
  url: string;
  port: number;
  /** varnishd's own output, for failure messages */
  output: string[];
  stop(): Promise<void>;
}

/** deploy/varnish-edge.vcl with `backend default` naming 127.0.0.1:`originPort`; throws if the VCL's shape changed. */
export function edgeVcl(originPort: number): string {
  const vcl = readFileSync(EDGE_VCL, 'utf8');
  const re = /(backend default \{[^}]*?\.host = )"[^"]*";(\s*\.port = )"[^"]*";/;
  if (!re.test(vcl)) throw new Error('deploy/varnish-edge.vcl no longer has `backend default { .host = "…"; .port = "…"; …}`: update test/helpers/varnish.ts');
  return vcl.replace(re, `$1"127.0.0.1";$2"${originPort}";`);
}

export async function startVarnish(o: { originPort: number; port?: number }): Promise<VarnishEdge> {
  if (VARNISH_MISSING) throw new Error(VARNISH_MISSING);
  const t = tempDir('ugcfs-varnish-');
  const port = o.port ?? (await freePort());
  const vcl = join(t.dir, 'edge.vcl');
  writeFileSync(vcl, edgeVcl(o.originPort));
  // Compile once first, so a VCL error fails with the compiler's message rather than a timeout.
  const check = spawnSync(VARNISHD!, ['-C', '-j', 'none', '-f', vcl, '-n', join(t.dir, 'check')], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  if (check.status !== 0) throw new Error(`deploy/varnish-edge.vcl does not compile:\n${check.stderr}`);
  const output: string[] = [];
  const child: ChildProcess = spawn(VARNISHD!, ['-F', '-n', join(t.dir, 'work'), '-a', `127.0.0.1:${port}`, '-f', vcl, '-j', 'none', '-s', 'malloc,64m', '-T', 'none', '-p', 'default_grace=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  trackChild(child);
  const collect = (b: Buffer) => output.push(...b.toString('utf8').split('\n').filter(Boolean));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // SIGTERM: the manager stops its cache process too (SIGKILL would orphan it)
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const late = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(late);
    }
    t.cleanup();
  };
  try {
    // /healthz is refused by the VCL itself, so a 404 with Varnish's Server header means it serves.
    await waitFor(`varnishd on ${url}\n${output.join('\n')}`, async () => {
      if (child.exitCode !== null) throw new Error(`varnishd exited:\n${output.join('\n')}`);
      const r = await fetch(`${url}/healthz`).catch(() => undefined);
      return r?.status === 404;
    }, 30_000, 200);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, port, output, stop };
}
