// Follows README.md on a fresh clone: the set-up command, then every shell block of the
// five-minute walkthrough, run as written against the started system.
//
// Deviations, all about sharing this machine: `npm install` runs as
// `npm install --prefer-offline --no-audit --no-fund` after copying this checkout's
// node_modules into the clone (no network, seconds instead of minutes); `npm start` gets
// UGCFS_ORIGIN_PORT/UGCFS_NAMESERVER_PORT/UGCFS_DATASERVER_PORT=0 so it cannot collide with
// other tests, and the walkthrough's http://127.0.0.1:8080 is replaced by the port it got
// (UGCFS_NAMESERVER points the admin CLI at the name server the same way). No credential
// comes from this test's environment: the walkthrough must find them where the README says,
// in the data/secrets.env the first start made.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CORPUS, ROOT, tempDir, waitFor } from '../helpers/proc.ts';
import { alive } from './all-in-one.ts';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** process.env without any credential variable, so only data/secrets.env can supply them */
function envWithoutCredentials(): Record<string, string | undefined> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^UGCFS_.*(SECRET|TOKEN|KEY)S?$/.test(k)) delete env[k];
  return env;
}

/** The fenced ```sh blocks of a markdown text, in order. */
export function shellBlocks(md: string): string[] {
  return [...md.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

/** The markdown between `## <title>` and the next `## ` heading. */
export function section(md: string, title: string): string {
  const start = md.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README has no section "${title}"`);
  const rest = md.slice(start + 1);
  const next = rest.indexOf('\n## ', 1);
  return next < 0 ? rest : rest.slice(0, next);
}

describe('README', () => {
  it('keeps the two set-up commands as its first two code blocks', () => {
    const blocks = [...README.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => m[2]!.trim());
    expect(blocks.slice(0, 2)).toEqual(['npm install && npm start', 'npm install && npm test']);
  });

  it('links only to files that exist', () => {
    const links = [...README.matchAll(/\]\(((?!https?:)[^)#]+)\)/g)].map((m) => m[1]!);
    expect(links.length).toBeGreaterThan(3);
    for (const l of links) expect(existsSync(join(ROOT, l)), l).toBe(true);
  });
});

describe('README on a fresh clone', () => {
  const tmp = tempDir('ugcfs-readme-');
  const clone = join(tmp.dir, 'ugcfs');
  let server: ChildProcess | undefined;
  const out: string[] = [];
  let origin = '';
  let nameserver = '';
  /** each role of `ugcfs server` is a process of its own, outside npm's process group */
  let rolePids: number[] = [];

  beforeAll(async () => {
    const git = spawnSync('git', ['clone', '--quiet', ROOT, clone], { encoding: 'utf8' });
    expect(git.status, git.stderr).toBe(0);
    const [install, startCmd] = shellBlocks(section(README, 'Set up'))[0]!.trim().split(/\s*&&\s*/);
    expect(install).toBe('npm install');
    expect(startCmd).toBe('npm start');
    expect(spawnSync('cp', ['-a', join(ROOT, 'node_modules'), join(clone, 'node_modules')]).status).toBe(0);
    const npmInstall = spawnSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone, encoding: 'utf8', timeout: 240_000 });
    expect(npmInstall.status, npmInstall.stderr).toBe(0);

    // detached: npm start runs node under a shell; the group is signalled as a whole.
    server = spawn('npm', ['start'], {
      cwd: clone,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...envWithoutCredentials(), UGCFS_ORIGIN_PORT: '0', UGCFS_NAMESERVER_PORT: '0', UGCFS_DATASERVER_PORT: '0', UGCFS_LOG_LEVEL: 'info' },
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`npm start did not become ready:\n${out.slice(-30).join('\n')}`)), 120_000);
      let buf = '';
      const onData = (d: Buffer) => {
        buf += d.toString('utf8');
        const lines = buf.split('\n');
        buf = lines.pop()!;
        for (const line of lines) {
          out.push(line);
          if (!line.startsWith('{')) continue;
          const j = JSON.parse(line) as Record<string, unknown>;
          if (j.msg === 'listening' && typeof j.nameserver === 'string') {
            origin = String(j.url);
            nameserver = j.nameserver;
            rolePids = Object.values((j.pids ?? {}) as Record<string, number>);
            clearTimeout(timer);
            resolve();
          }
        }
      };
      server!.stdout!.on('data', onData);
      server!.stderr!.on('data', onData);
      server!.on('exit', (code) => reject(new Error(`npm start exited with ${code}:\n${out.slice(-30).join('\n')}`)));
    });
  }, 420_000);

  afterAll(async () => {
    if (server?.pid && server.exitCode === null) {
      const exited = new Promise((r) => server!.once('exit', r));
      process.kill(-server.pid, 'SIGKILL');
      await exited;
    }
    // Their supervisor killed, the roles stop themselves: the clone goes once they have.
    await waitFor('the roles of npm start to exit', () => rolePids.every((pid) => !alive(pid)), 60_000);
    tmp.cleanup();
  });

  it('prints where its credentials are and how to upload with them', () => {
    const printed = out.join('\n');
    const secrets = join(clone, 'data', 'secrets.env');
    expect(printed).toContain(`set -a; . ${secrets}; set +a`);
    expect(printed).toContain(`curl -s -H "Authorization: Bearer $UGCFS_UPLOAD_TOKENS" -F file=@photo.jpg ${origin}/upload`);
    expect(statSync(secrets).mode & 0o777).toBe(0o600);
    expect(existsSync(join(clone, 'data', 'nameserver'))).toBe(true);
    expect(existsSync(join(clone, 'data', 'ds-3'))).toBe(true);
  });

  /** Runs a shell script in the clone the way a second terminal would. */
  const shell = (flags: string[], script: string) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', [...flags, '-c', script], {
        cwd: clone,
        env: { ...envWithoutCredentials(), UGCFS_NAMESERVER: nameserver, PATH: `${join(clone, 'node_modules', '.bin')}:${dirname(process.execPath)}:${process.env.PATH}` },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });

  it('runs the five-minute walkthrough as written: credentials, upload, fetch, variants, admin CLI, delete', async () => {
    copyFileSync(join(CORPUS, 'photos', 'FreshFlower.jpg'), join(clone, 'photo.jpg'));
    const blocks = shellBlocks(section(README, 'Five-minute walkthrough')).map((b) => b.replaceAll('http://127.0.0.1:8080', origin));
    // Its first step loads data/secrets.env into the shell; the upload needs it.
    expect(blocks[0]!.trim()).toBe('set -a; . ./data/secrets.env; set +a');
    expect(blocks[1]).toContain('/upload');
    const without = await shell(['-e', '-o', 'pipefail'], blocks[1]!);
    expect(without.code, 'the upload block without the credentials').toBe(22); // curl -f: HTTP 401

    const r = await shell(['-eu', '-o', 'pipefail'], blocks.join('\n'));
    expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0);

    const upload = JSON.parse(readFileSync(join(clone, 'upload.json'), 'utf8')) as { files: Array<{ fid: string; url: string; sha256: string; width: number; height: number }> };
    const f = upload.files[0]!;
    expect(f.url.startsWith(origin)).toBe(true);
    const original = readFileSync(join(clone, 'original.jpg'));
    expect(createHash('sha256').update(original).digest('hex')).toBe(f.sha256);
    const thumb = await sharp(join(clone, 'thumb.webp')).metadata();
    expect([thumb.format, thumb.width, thumb.height]).toEqual(['webp', 400, 400]);
    const taobao = await sharp(join(clone, 'taobao.webp')).metadata();
    expect(taobao.format).toBe('webp');
    expect(Math.max(taobao.width!, taobao.height!)).toBe(200);
    expect(r.stdout).toContain('byte-exact');
    // The last line is the status of fetching the deleted file.
    expect(r.stdout.trim().split('\n').at(-1)).toBe('404');
  }, 180_000);
});
