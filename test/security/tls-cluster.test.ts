// HTTPS between every role (docs/SECURITY.md, "TLS between roles"): a name server, two data
// servers (2 replicas) and an origin, each its own process with --tls-cert, --tls-key and
// --tls-ca, on a certificate from a throwaway CA made here with openssl. Uploads, reads,
// variants, replication and deletes cross only https; plain http and a client that does not
// trust the CA are refused; a bad key file stops a start with one line.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startRole, type RoleProcess } from '../helpers/cluster.ts';
import { CORPUS, run, tempDir, waitFor } from '../helpers/proc.ts';
import { agentFor, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, type ClusterStatus } from '../../src/wire/protocol.ts';

/** A CA, and a certificate it signs for 127.0.0.1 and localhost: ca.pem, server.pem, server.key in `dir`. */
function makeCertificates(dir: string): { ca: string; cert: string; key: string } {
  const p = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileSync('/usr/bin/openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.pem'), '-days', '2', '-subj', '/CN=ugcfs test CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  openssl('req', ...ec, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', '/CN=localhost');
  writeFileSync(p('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n');
  openssl('x509', '-req', '-in', p('server.csr'), '-CA', p('ca.pem'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p('server.pem'), '-days', '2', '-extfile', p('server.ext'));
  return { ca: p('ca.pem'), cert: p('server.pem'), key: p('server.key') };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('TLS between roles', () => {
  const { dir, cleanup } = tempDir('ugcfs-tls-');
  const secret = randomBytes(24).toString('hex');
  const env = { UGCFS_CLUSTER_SECRET: secret };
  const uploadToken = randomBytes(24).toString('hex');
  const auth = { authorization: `Bearer ${uploadToken}` };
  const procs: RoleProcess[] = [];
  let files: { ca: string; cert: string; key: string };
  let tlsArgs: string[];
  let nsUrl: string;
  let origin: RoleProcess;
  let dataservers: RoleProcess[];
  // What a client that trusts the test CA sends through.
  let trusted: ReturnType<typeof agentFor>;

  beforeAll(async () => {
    files = makeCertificates(dir);
    tlsArgs = ['--tls-cert', files.cert, '--tls-key', files.key, '--tls-ca', files.ca];
    trusted = agentFor(files.ca);
    const port = await freePort();
    nsUrl = `https://127.0.0.1:${port}`;
    const start = async (args: string[], extraEnv: Record<string, string> = {}) => {
      const p = await startRole([...args, ...tlsArgs], { env: { ...env, ...extraEnv } });
      procs.push(p);
      return p;
    };
    const ns = await start(['nameserver', '--data', join(dir, 'ns'), '--port', String(port), '--replicas', '2', '--heartbeat-ms', '100', '--dead-after-ms', '1500', '--startup-grace-ms', '500']);
    expect(ns.url).toBe(nsUrl);
    dataservers = await Promise.all(
      ['a', 'b'].map((rack, i) => start(['dataserver', '--data', join(dir, `ds-${i + 1}`), '--id', `ds-${i + 1}`, '--nameserver', nsUrl, '--port', '0', '--rack', rack, '--block-size', '1048576', '--heartbeat-ms', '100', '--fsync=false'])),
    );
    for (const ds of dataservers) expect(ds.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await waitFor('both data servers alive over https', async () => {
      const s = JSON.parse((await callRaw(`${nsUrl}/status`, { secret, dispatcher: trusted })).body.toString('utf8')) as ClusterStatus;
      return s.dataservers.filter((d) => d.alive && d.url.startsWith('https://')).length === 2;
    }, 30_000);
    origin = await start(['origin', '--nameserver', nsUrl, '--port', '0'], { UGCFS_UPLOAD_TOKENS: uploadToken });
    expect(origin.url).toMatch(/^https:\/\//);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.kill()));
    cleanup();
  });

  it('uploads through the origin, reads the original and a variant back, replicated to both data servers, and deletes', async () => {
    const image = readFileSync(join(CORPUS, 'photos', 'Aqua.jpg'));
    const up = await request(`${origin.url}/upload`, { method: 'POST', headers: { ...auth, 'content-type': 'application/octet-stream' }, body: image, dispatcher: trusted });
    const answer = (await up.body.json()) as { files: Array<{ fid: string; url: string; sha256: string }> };
    expect(up.statusCode).toBe(201);
    const { fid, url, sha256: stored } = answer.files[0]!;
    expect(url.startsWith(origin.url)).toBe(true);

    const original = await request(url, { dispatcher: trusted });
    expect(original.statusCode).toBe(200);
    const bytes = Buffer.from(await original.body.arrayBuffer());
    expect(sha256(bytes)).toBe(stored);

    const variant = await request(`${url}?w=64&h=64&fit=cover`, { dispatcher: trusted });
    expect(variant.statusCode).toBe(200);
    const meta = await sharp(Buffer.from(await variant.body.arrayBuffer())).metadata();
    expect([meta.width, meta.height]).toEqual([64, 64]);

    // Each data server's own copy, over https with the secret: the primary forwarded to its replica.
    const copy = (ds: RoleProcess) => callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), { secret, dispatcher: trusted });
    for (const ds of dataservers) {
      const c = await copy(ds);
      expect(c.status).toBe(200);
      expect(c.body.equals(bytes)).toBe(true);
    }

    const del = await request(`${origin.url}/${fid}`, { method: 'DELETE', headers: auth, dispatcher: trusted });
    await del.body.dump();
    expect(del.statusCode).toBe(204);
    const gone = await request(url, { dispatcher: trusted });
    await gone.body.dump();
    expect(gone.statusCode).toBe(404);
    for (const ds of dataservers) await waitFor(`the delete on ${ds.url}`, async () => (await copy(ds)).status === 404);
  });

  it('`ugcfs status` reaches the name server with --tls-ca, and is refused a certificate without it', async () => {
    const ok = await run(['status', '--json', '--nameserver', nsUrl, '--tls-ca', files.ca], { env });
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    const s = JSON.parse(ok.stdout) as ClusterStatus;
    expect(s.dataservers.filter((d) => d.alive).map((d) => d.id).sort()).toEqual(['ds-1', 'ds-2']);

    const untrusting = await run(['status', '--json', '--nameserver', nsUrl], { env });
    expect(untrusting.code).not.toBe(0);
    expect(untrusting.stderr).toMatch(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|certificate/i);
  });

  it('refuses plain http on a TLS port, and a client that does not trust the CA', async () => {
    for (const target of [nsUrl, dataservers[0]!.url, origin.url]) {
      await expect(request(`${target.replace('https://', 'http://')}/healthz`, { headersTimeout: 5000 })).rejects.toThrow();
      // undici's shared default: Node's CAs only
      await expect(request(`${target}/healthz`)).rejects.toMatchObject({ code: expect.stringMatching(/UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT/) });
      const ok = await request(`${target}/healthz`, { dispatcher: trusted });
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();
    }
  });

  it('stops a start with one line (exit 2) on a bad key path, or a certificate without its key', async () => {
    const ds = (extra: string[]) => run(['dataserver', '--data', join(dir, 'ds-bad'), '--nameserver', nsUrl, '--port', '0', ...extra], { env });
    const missing = await ds(['--tls-cert', files.cert, '--tls-key', join(dir, 'missing.key'), '--tls-ca', files.ca]);
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/--tls-key: cannot read .*missing\.key \(ENOENT\)/);

    const alone = await ds(['--tls-cert', files.cert]);
    expect(alone.code).toBe(2);
    expect(alone.stderr.trim().split('\n')).toHaveLength(1);
    expect(alone.stderr).toMatch(/--tls-cert and --tls-key go together/);

    const notCa = await ds(['--tls-ca', files.key]);
    expect(notCa.code).toBe(2);
    expect(notCa.stderr).toMatch(/--tls-ca: .* holds no PEM certificate/);
  });
});
