// A copy the name server orders removed (here an extra copy, made by hand beside a block
// that already has its replica count) is set aside in the data server's quarantine/, not
// unlinked, and the cluster status shows what each data server holds there.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callJson } from '../../src/clients/http-client.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { DS_ROUTES, type QuarantineListing } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';

describe('quarantine on a name server\'s order', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = await startCluster({ dataservers: 2, replicas: 1, racks: [''] });
  }, 60_000);
  afterAll(() => c?.stop());

  it('an extra copy goes to quarantine/, is listed, shows in status, and can be removed', async () => {
    const data = Buffer.alloc(20_000, 9);
    const { fid } = await c.client.write(data, { mime: 'application/octet-stream' });
    const block = decodeFid(fid).block;
    // The block's holder by its location: the other server may hold a block of its own by
    // now (the name server keeps one writable block per server), so "has blocks" is not it.
    const holderId = (await c.client.locate(block, true)).replicas[0]!.id;
    const holder = c.dsIds.indexOf(holderId);
    const other = 1 - holder;
    const pulled = await callJson<{ bytes: number }>(c.dataservers[other]!.url + DS_ROUTES.blockPull.replace(':id', String(block)), { method: 'POST', body: { from: c.dataservers[holder]!.url }, secret: c.secret });
    expect(pulled.bytes).toBeGreaterThan(20_000);
    const s = await c.waitFor((st) => (st.dataservers.find((d) => d.id === c.dsIds[other])?.quarantine?.files ?? 0) === 1, 'the extra copy quarantined');
    expect(s.dataservers.find((d) => d.id === c.dsIds[other])!.quarantine!.bytes).toBe(pulled.bytes);
    const dir = join(c.dir, `ds-${other + 1}`);
    expect(readdirSync(join(dir, 'blocks')).filter((n) => n.startsWith(`${block}.`))).toEqual([]);
    const list = await callJson<QuarantineListing>(c.dataservers[other]!.url + DS_ROUTES.quarantine, { secret: c.secret });
    expect(list.files).toHaveLength(1);
    expect(list.files[0]).toMatchObject({ reason: 'nameserver-order', bytes: pulled.bytes });
    // The file itself still reads back from its one real copy.
    expect((await c.client.read(fid)).data.equals(data)).toBe(true);
    const json = JSON.parse((await c.cli(['status', '--json'])).stdout) as { dataservers: Array<{ id: string; quarantine?: { files: number } }> };
    expect(json.dataservers.find((d) => d.id === c.dsIds[other])?.quarantine?.files).toBe(1);
    // Removed only by an explicit order.
    const name = list.files[0]!.name;
    await callJson(c.dataservers[other]!.url + DS_ROUTES.quarantineItem.replace(':name', name), { method: 'DELETE', secret: c.secret });
    expect(existsSync(join(dir, 'quarantine', name))).toBe(false);
    await c.waitFor((st) => st.dataservers.find((d) => d.id === c.dsIds[other])?.quarantine === undefined, 'status without quarantine');
  });
});
