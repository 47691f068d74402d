// Per-role credentials: an origin holds the origins' credential (--origin-secret), not the
// cluster secret. With it the whole file path works (upload, read, variant, delete, peer
// purge); what it must never reach — deleting, pulling, compacting, scrubbing or creating
// blocks, repair copies, heartbeats, operations — answers 403 UGCFS_ERR_FORBIDDEN and
// changes nothing. Real name server, data servers and origin processes.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { CORPUS, run, start, type Proc } from '../helpers/proc.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFid } from '../../src/wire/file-id.ts';

const ORIGIN_SECRET = `origin-${randomBytes(20).toString('hex')}`;
const TOKEN = randomBytes(24).toString('hex');
const photo = readFileSync(join(CORPUS, 'photos', 'LadyBird.jpg'));

let cluster: Cluster;
let origin: Proc;
let fid: string;

async function call(url: string, init: { method?: string; credential?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; code: string | undefined }> {
  const headers: Record<string, string> = { ...(init.headers ?? {}) };
  if (init.credential !== undefined) headers['x-ugcfs-secret'] = init.credential;
  if (typeof init.body === 'string') headers['content-type'] ??= 'application/json';
  const r = await fetch(url, { method: init.method ?? 'GET', headers, body: init.body });
  const text = await r.text();
  let code: string | undefined;
  try {
    code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
  } catch {
    code = undefined;
  }
  return { status: r.status, code };
}

beforeAll(async () => {
  cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''], env: { UGCFS_ORIGIN_SECRET: ORIGIN_SECRET } });
  await cluster.waitForAlive();
  // No cluster secret at all: the origin calls with the origins' credential.
  origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], {
    env: { UGCFS_CLUSTER_SECRET: '', UGCFS_ORIGIN_SECRET: ORIGIN_SECRET, UGCFS_UPLOAD_TOKENS: TOKEN },
  });
}, 120_000);

afterAll(async () => {
  await origin?.kill('SIGKILL');
  await cluster?.stop();
});

describe('an origin holding only the origins credential', () => {
  it('uploads, serves the original and a variant, and deletes', async () => {
    const form = new FormData();
    form.append('file', new Blob([photo], { type: 'image/jpeg' }), 'p.jpg');
    const up = await fetch(`${origin.url}/upload`, { method: 'POST', body: form, headers: { authorization: `Bearer ${TOKEN}` } });
    expect(up.status).toBe(201);
    fid = ((await up.json()) as { files: Array<{ fid: string }> }).files[0]!.fid;
    const original = await fetch(`${origin.url}/${fid}.jpg`);
    expect(original.status).toBe(200);
    expect(Buffer.from(await original.arrayBuffer()).length).toBeGreaterThan(0);
    const variant = await fetch(`${origin.url}/${fid}.jpg?w=2`);
    expect(variant.status).toBe(200);
    // The same credential reads a needle straight from a data server.
    expect((await call(`${cluster.dataservers[0]!.url}/needles/${fid}`, { credential: ORIGIN_SECRET })).status).toBe(200);
  });

  it('is refused 403 on every block and cluster route, and the block is still there', async () => {
    const block = decodeFid(fid).block;
    const ds = cluster.dataservers[0]!.url;
    const ns = cluster.nameserver.url;
    const refused = [
      await call(`${ds}/blocks/${block}`, { method: 'DELETE', credential: ORIGIN_SECRET }),
      await call(`${ds}/blocks/${block}/pull`, { method: 'POST', credential: ORIGIN_SECRET, body: JSON.stringify({ from: cluster.dataservers[1]!.url }) }),
      await call(`${ds}/blocks/${block}/compact`, { method: 'POST', credential: ORIGIN_SECRET }),
      await call(`${ds}/blocks/${block}/scrub`, { method: 'POST', credential: ORIGIN_SECRET }),
      await call(`${ds}/blocks/${block}/readonly`, { method: 'POST', credential: ORIGIN_SECRET, body: JSON.stringify({ readonly: true }) }),
      await call(`${ds}/blocks/9999`, { method: 'POST', credential: ORIGIN_SECRET, body: '{}' }),
      await call(`${ds}/blocks/${block}/data`, { credential: ORIGIN_SECRET }),
      // a repair copy writes onto read-only blocks: the name server's, not an origin's
      await call(`${ds}/needles/${fid}`, { method: 'DELETE', credential: ORIGIN_SECRET, headers: { 'x-ugcfs-repair': '1' } }),
      await call(`${ns}/ops`, { method: 'POST', credential: ORIGIN_SECRET, body: JSON.stringify({ kind: 'rebalance' }) }),
      await call(`${ns}/ds/heartbeat`, { method: 'POST', credential: ORIGIN_SECRET, body: '{}' }),
      await call(`${ns}/status`, { credential: ORIGIN_SECRET }),
    ];
    expect(refused).toEqual(refused.map(() => ({ status: 403, code: 'UGCFS_ERR_FORBIDDEN' })));
    // Nothing happened: both copies of the block are there, the file reads from each.
    for (const d of cluster.dataservers) {
      expect((await call(`${d.url}/blocks/${block}`, { credential: cluster.secret })).status).toBe(200);
      expect((await call(`${d.url}/needles/${fid}`, { credential: cluster.secret })).status).toBe(200);
    }
    // A wrong credential is 401, not 403: it proves nothing.
    expect(await call(`${ds}/blocks/${block}`, { method: 'DELETE', credential: 'x'.repeat(40) })).toEqual({ status: 401, code: 'UGCFS_ERR_UNAUTHORIZED' });
  });

  it('deletes a file through the origin, on every copy', async () => {
    const del = await fetch(`${origin.url}/${fid}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(del.status).toBe(204);
    expect((await fetch(`${origin.url}/${fid}.jpg`)).status).toBe(404);
    for (const d of cluster.dataservers) expect((await call(`${d.url}/needles/${fid}`, { credential: cluster.secret })).status).toBe(404);
  });

  it('an origin with neither credential does not start: exit 2, one line', async () => {
    const r = await run(['origin', '--nameserver', cluster.nameserver.url, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: '', UGCFS_ORIGIN_SECRET: '' } });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--origin-secret');
  });
});
