// The name server as a process on its own: start-up checks, health and metrics, a clear
// 503 when no data server can take a block, and a clean SIGTERM.
import { describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { NS_ROUTES } from '../../src/wire/protocol.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import { run, start, tempDir } from '../helpers/proc.ts';

describe('ugcfs nameserver', () => {
  it('serves health and metrics, refuses to assign without data servers, and exits 0 on SIGTERM', async () => {
    const { dir, cleanup } = tempDir();
    const ns = await start(['nameserver', '--data', dir, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: 's3cret' } });
    try {
      const health = await callRaw(ns.url + '/healthz');
      expect(health.status).toBe(200);
      expect(JSON.parse(health.body.toString())).toMatchObject({ ok: true, role: 'nameserver', dataserversAlive: 0 });
      // read the samples, not value(): a gauge with no sample would read 0 there too
      const { samples } = await scrapeMetrics(ns.url);
      expect(samples.filter((x) => x.name === 'ugcfs_dataservers_alive').map((x) => x.value)).toEqual([0]);
      expect(samples.some((x) => x.name === 'ugcfs_under_replicated_blocks')).toBe(true);
      const assign = await callRaw(ns.url + NS_ROUTES.assign, { method: 'POST', body: {}, secret: 's3cret' });
      expect(assign.status).toBe(503);
      expect(JSON.parse(assign.body.toString()).error.code).toBe('UGCFS_ERR_UNAVAILABLE');
      const status = await callRaw(ns.url + NS_ROUTES.status, { secret: 's3cret' });
      expect(JSON.parse(status.body.toString())).toMatchObject({ dataservers: [], underReplicatedBlocks: 0, blocks: 0, replicas: 2 });
      expect(await ns.kill('SIGTERM')).toBe(0);
      expect(ns.lines.join('\n')).not.toContain('s3cret');
    } finally {
      await ns.kill('SIGKILL');
      cleanup();
    }
  });

  it('exits 2 with one line on bad usage', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const cases = [
        ['nameserver'],
        ['nameserver', '--data', dir, '--replicas', '0'],
        ['nameserver', '--data', dir, '--bogus', '1'],
        ['nameserver', '--data', dir, '--host', '0.0.0.0', '--port', '0'],
      ];
      const results = await Promise.all(cases.map((args) => run(args, { env: { UGCFS_CLUSTER_SECRET: '' } })));
      results.forEach((r, i) => {
        expect(r.code, cases[i]!.join(' ')).toBe(2);
        expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('ugcfs'))).toHaveLength(1);
      });
    } finally {
      cleanup();
    }
  });

  it('keeps its admin token: status needs the token or the secret', async () => {
    const { dir, cleanup } = tempDir();
    const ns = await start(['nameserver', '--data', dir, '--port', '0'], { env: { UGCFS_CLUSTER_SECRET: 'sec', UGCFS_ADMIN_TOKEN: 'adm' } });
    try {
      expect((await callRaw(ns.url + NS_ROUTES.status)).status).toBe(401);
      expect((await callRaw(ns.url + NS_ROUTES.status, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
      expect((await callRaw(ns.url + NS_ROUTES.status, { headers: { authorization: 'Bearer adm' } })).status).toBe(200);
      expect((await callRaw(ns.url + NS_ROUTES.status, { secret: 'sec' })).status).toBe(200);
      // the admin token is not the cluster secret: internal routes refuse it
      expect((await callRaw(ns.url + NS_ROUTES.assign, { method: 'POST', body: {}, headers: { authorization: 'Bearer adm' } })).status).toBe(401);
      const cli = await run(['status', '--json'], { env: { UGCFS_NAMESERVER: ns.url, UGCFS_CLUSTER_SECRET: '', UGCFS_ADMIN_TOKEN: 'adm' } });
      expect(cli.code).toBe(0);
      expect(JSON.parse(cli.stdout)).toMatchObject({ dataservers: [], underReplicatedBlocks: 0 });
    } finally {
      await ns.kill('SIGKILL');
      cleanup();
    }
  });
});
