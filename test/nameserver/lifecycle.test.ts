// The name server as a process on its own: start-up checks, health and metrics, a clear
// 503 when no data server can take a block, and a clean SIGTERM.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { NS_ROUTES } from '../../src/wire/protocol.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { run, start, tempDir } from '../helpers/proc.ts';

const strong = (label: string) => `${label}-${randomBytes(16).toString('hex')}`;

describe('ugcfs nameserver', () => {
  it('serves health and metrics, refuses to assign without data servers, and exits 0 on SIGTERM', async () => {
    const { dir, cleanup } = tempDir();
    const secret = strong('lifecycle-secret');
    const ns = await start(['nameserver', '--data', dir, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: secret } });
    try {
      const health = await callRaw(ns.url + '/healthz');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body.toString())).toMatchObject({ ok: true, role: 'nameserver', dataserversAlive: 0 });
      // read the samples, not value(): a gauge with no sample would read 0 there too
      const { samples } = await scrapeMetrics(ns.url);
      expect(samples.filter((x) => x.name === 'ugcfs_dataservers_alive').map((x) => x.value)).toEqual([0]);
      expect(samples.some((x) => x.name === 'ugcfs_under_replicated_blocks')).toBe(true);
      const assign = await callRaw(ns.url + NS_ROUTES.assign, { method: 'POST', body: {}, secret });
      expect(assign.status).toBe(503);
      expect(JSON.parse(assign.body.toString()).error.code).toBe('UGCFS_ERR_UNAVAILABLE');
      const status = await callRaw(ns.url + NS_ROUTES.status, { secret });
      expect(JSON.parse(status.body.toString())).toMatchObject({ dataservers: [], underReplicatedBlocks: 0, blocks: 0, replicas: 2 });
      expect(await ns.kill('SIGTERM')).toBe(0);
      expect(ns.lines.join('\n')).not.toContain(secret);
    } finally {
      await ns.kill('SIGKILL');
      cleanup();
    }
  });

  it('exits 2 with one line on bad usage, and without a strong cluster secret, loopback included', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const cases: Array<{ args: string[]; env?: Record<string, string>; says: string }> = [
        { args: ['nameserver'], says: 'option --data is required' },
        { args: ['nameserver', '--data', dir, '--replicas', '0'], says: 'option --replicas' },
        { args: ['nameserver', '--data', dir, '--bogus', '1'], says: 'unknown option --bogus' },
        { args: ['nameserver', '--data', dir, '--port', '0'], env: { UGCFS_CLUSTER_SECRET: '' }, says: 'option --cluster-secret is required' },
        { args: ['nameserver', '--data', dir, '--port', '0'], env: { UGCFS_CLUSTER_SECRET: 'c'.repeat(31) }, says: 'option --cluster-secret (from UGCFS_CLUSTER_SECRET) is shorter than 32 characters' },
        { args: ['nameserver', '--data', dir, '--port', '0'], env: { UGCFS_CLUSTER_SECRET: 'change-me-cluster-secret' }, says: 'option --cluster-secret' },
        { args: ['nameserver', '--data', dir, '--port', '0'], env: { UGCFS_CLUSTER_SECRET: `change-me-${'c'.repeat(30)}` }, says: 'option --cluster-secret (from UGCFS_CLUSTER_SECRET) is an example value' },
        { args: ['nameserver', '--data', dir, '--port', '0', '--cluster-secret', 'c'.repeat(31)], says: 'option --cluster-secret (from command line) is shorter than 32 characters' },
        { args: ['nameserver', '--data', dir, '--port', '0'], env: { UGCFS_ADMIN_TOKEN: 'adm' }, says: 'option --admin-token (from UGCFS_ADMIN_TOKEN) is shorter than 32 characters' },
      ];
      const results = await Promise.all(cases.map((c) => run(c.args, { env: c.env })));
      results.forEach((r, i) => {
        const c = cases[i]!;
        const what = `${c.args.join(' ')} ${JSON.stringify(c.env ?? {})}`;
        expect(r.code, what).toBe(2);
        const lines = r.stderr.trim().split('\n').filter((l) => l.startsWith('ugcfs'));
        expect(lines, what).toHaveLength(1);
        expect(lines[0], what).toContain(c.says);
        expect(r.stdout, what).not.toContain('"msg":"listening"');
      });
    } finally {
      cleanup();
    }
  });

  it('keeps its admin token: status needs the token or the secret', async () => {
    const { dir, cleanup } = tempDir();
    const sec = strong('lifecycle-secret');
    const adm = strong('lifecycle-admin');
    const ns = await start(['nameserver', '--data', dir, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: sec, UGCFS_ADMIN_TOKEN: adm } });
    try {
      expect((await callRaw(ns.url + NS_ROUTES.status)).status).toBe(401);
      expect((await callRaw(ns.url + NS_ROUTES.status, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await callRaw(ns.url + NS_ROUTES.status, { headers: { authorization: `Bearer ${adm}` } })).status).toBe(200);
      expect((await callRaw(ns.url + NS_ROUTES.status, { secret: sec })).status).toBe(200);
      // the admin token is not the cluster secret: internal routes refuse it
      expect((await callRaw(ns.url + NS_ROUTES.assign, { method: 'POST', body: {}, headers: { authorization: `Bearer ${adm}` } })).status).toBe(401);
      const cli = await run(['status', '--json'], { env: { UGCFS_NAMESERVER: ns.url, UGCFS_CLUSTER_SECRET: '', UGCFS_ADMIN_TOKEN: adm } });
      expect(cli.code).toBe(0);
      expect(JSON.parse(cli.stdout)).toMatchObject({ dataservers: [], underReplicatedBlocks: 0 });
    } finally {
      await ns.kill('SIGKILL');
      cleanup();
    }
  });
});
