// `ugcfs server` trusts no address, loopback included: its first start writes the cluster's
// credentials to <data>/secrets.env (mode 0600), later starts reuse them, uploads and internal
// routes ask for them, and a file holding a guessable value stops the start (exit 2).
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SECRET_NAMES } from '../../cli/secrets-env.ts';
import type { BlockReport } from '../../src/wire/protocol.ts';
import { CORPUS, run, tempDir, waitFor } from '../helpers/proc.ts';
import { readSecretsEnv, startAllInOne, type AllInOne } from './all-in-one.ts';

/** what the file holds, in its order: at least the cluster secret, the admin token and the upload token */
const NAMES: string[] = [...SECRET_NAMES];
const PHOTO = readFileSync(join(CORPUS, 'photos', 'Aqua.jpg'));

/** stderr without Node's process-warning lines, which are not ours to print */
const errorLines = (stderr: string) => stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l));

async function upload(s: AllInOne, headers: Record<string, string>): Promise<{ status: number; body: { files?: Array<{ fid: string }>; error?: { code: string } } }> {
  const res = await fetch(`${s.origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...headers }, body: PHOTO });
  return { status: res.status, body: (await res.json()) as { files?: Array<{ fid: string }>; error?: { code: string } } };
}

describe('<data>/secrets.env of ugcfs server', () => {
  const tmp = tempDir('ugcfs-secrets-env-');
  const file = join(tmp.dir, 'data', 'secrets.env');
  let s: AllInOne | undefined;
  afterAll(async () => {
    await s?.stop();
    tmp.cleanup();
  });

  it('is made on the first start (0600, values of 64 hex), reused on the next, and asked for by uploads and internal routes', async () => {
    expect(NAMES).toEqual(expect.arrayContaining(['UGCFS_CLUSTER_SECRET', 'UGCFS_ADMIN_TOKEN', 'UGCFS_UPLOAD_TOKENS']));
    s = await startAllInOne({ dir: tmp.dir, args: ['--dataservers', '2', '--replicas', '2'] });
    const first = s;
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
    expect(lines.map((l) => l.split('=')[0])).toEqual(NAMES);
    for (const l of lines) expect(l).toMatch(/^UGCFS_[A-Z_]+=[0-9a-f]{64}$/);
    const values = readSecretsEnv(file);
    expect(new Set(NAMES.map((n) => values[n])).size, 'different values').toBe(NAMES.length);
    // Nothing the server printed holds them.
    for (const n of NAMES) expect(first.proc.lines.join('\n')).not.toContain(values[n]);

    // Uploads from loopback: no token, a wrong one, the file's.
    const anon = await upload(first, {});
    expect(anon.status).toBe(401);
    expect(anon.body.error?.code).toBe('UGCFS_ERR_UNAUTHORIZED');
    const wrong = await upload(first, { authorization: `Bearer ${randomBytes(32).toString('hex')}` });
    expect(wrong.status).toBe(401);
    const ok = await upload(first, { authorization: `Bearer ${values.UGCFS_UPLOAD_TOKENS}` });
    expect(ok.status).toBe(201);
    const fid = ok.body.files![0]!.fid;
    // Deleting asks for a token too.
    expect((await fetch(`${first.origin}/${fid}`, { method: 'DELETE' })).status).toBe(401);
    expect((await fetch(`${first.origin}/${fid}`)).status).toBe(200);

    expect(await first.proc.kill('SIGTERM')).toBe(0);

    // Same data directory: the same file, byte for byte, and the same credentials work (one
    // origin process this time: the first start's workers showed they print no credential).
    s = await startAllInOne({ dir: tmp.dir, args: ['--dataservers', '2', '--replicas', '2', '--origin-workers', '1'] });
    const second = s;
    expect(readFileSync(file, 'utf8')).toBe(text);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(second.secrets).toEqual(values);
    expect((await waitFor(`${fid} after the restart`, async () => {
      const r = await fetch(`${second.origin}/${fid}`);
      await r.arrayBuffer();
      return r.status === 200 || undefined;
    }, 30_000))).toBe(true);
    expect((await upload(second, {})).status).toBe(401);
    expect((await upload(second, { authorization: `Bearer ${values.UGCFS_UPLOAD_TOKENS}` })).status).toBe(201);

    // An internal route of its data server: refused without the cluster secret (or with
    // another credential), done with the file's.
    const ds = second.dataservers[0]!;
    const secret = { 'x-ugcfs-secret': values.UGCFS_CLUSTER_SECRET! };
    expect((await fetch(`${ds}/blocks`)).status).toBe(401);
    const held = async () => ((await (await fetch(`${ds}/blocks`, { headers: secret })).json()) as BlockReport[]).map((b) => b.id);
    const blocks = await held();
    expect(blocks.length).toBeGreaterThan(0);
    const block = blocks[0]!;
    const anonDelete = await fetch(`${ds}/blocks/${block}`, { method: 'DELETE' });
    expect(anonDelete.status).toBe(401);
    expect(((await anonDelete.json()) as { error: { code: string } }).error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
    expect((await fetch(`${ds}/blocks/${block}`, { method: 'DELETE', headers: { authorization: `Bearer ${values.UGCFS_UPLOAD_TOKENS}` } })).status).toBe(401);
    expect(await held()).toContain(block);
    expect((await fetch(`${ds}/blocks/${block}`, { method: 'DELETE', headers: { authorization: `Bearer ${values.UGCFS_CLUSTER_SECRET}` } })).status).toBe(204);
    expect(await held()).not.toContain(block);
    expect(await second.proc.kill('SIGTERM')).toBe(0);
  }, 240_000);

  it('stops the start with exit 2 and one line naming the file when it holds a short value', async () => {
    const before = readSecretsEnv(file);
    const short = randomBytes(16).toString('hex').slice(0, 31);
    writeFileSync(file, NAMES.map((n) => `${n}=${n === 'UGCFS_ADMIN_TOKEN' ? short : before[n]}`).join('\n') + '\n', { mode: 0o600 });
    const args = ['server', '--data', join(tmp.dir, 'data'), '--port', '0', '--nameserver-port', '0', '--dataserver-port', '0', '--fsync=false'];
    const r = await run(args, { timeoutMs: 60_000 });
    const lines = errorLines(r.stderr);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toContain(file);
    expect(lines[0]).toMatch(/^ugcfs server: option UGCFS_ADMIN_TOKEN \(from .*\) is shorter than 32 characters/);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    for (const v of [short, before.UGCFS_CLUSTER_SECRET!, before.UGCFS_UPLOAD_TOKENS!]) expect(r.stderr).not.toContain(v);
    // The file is left as the operator wrote it: nothing regenerated behind their back.
    expect(readSecretsEnv(file).UGCFS_ADMIN_TOKEN).toBe(short);

    // An example value is refused the same way, and so is a line that is not NAME=value.
    writeFileSync(file, `UGCFS_CLUSTER_SECRET=change-me-${randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
    const example = await run(args, { timeoutMs: 60_000 });
    expect(errorLines(example.stderr), example.stderr).toEqual([expect.stringMatching(/^ugcfs server: option UGCFS_CLUSTER_SECRET \(from .*secrets\.env\) is an example value/)]);
    expect(example.code).toBe(2);
    writeFileSync(file, 'UGCFS_CLUSTER_SECRET = spaced\n', { mode: 0o600 });
    const garbled = await run(args, { timeoutMs: 60_000 });
    expect(errorLines(garbled.stderr), garbled.stderr).toEqual([`ugcfs server: ${file}:1 is not a NAME=value line of ${NAMES.join(', ')}`]);
    expect(garbled.code).toBe(2);
  }, 180_000);
});
