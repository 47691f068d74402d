// Anti-entropy: with --verify-interval-ms the name server runs verify --repair by itself, so
// copies a half-applied delete left apart are settled without an operator. The divergence is
// made by hand (a delete applied to one copy only, as a crash between the copies leaves it);
// real name server and data servers.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, HEADERS } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { holdsCopy } from '../helpers/needle-copy.ts';
import { waitFor } from '../helpers/proc.ts';

let c: Cluster;
beforeAll(async () => {
  c = await startCluster({ dataservers: 2, replicas: 2, racks: [''], nameserverArgs: ['--verify-interval-ms', '1500'] });
});
afterAll(async () => {
  await c?.stop();
});

const holds = (url: string, fid: string) => holdsCopy(url, fid, c.secret);

describe('automatic verify --repair', () => {
  it('settles a delete that reached one copy only (the delete wins) and leaves other files alone', async () => {
    const kept = await c.client.write(Buffer.from('a file nobody deleted'));
    const doomed = await c.client.write(Buffer.from('a file deleted on one copy only'));
    const [a, b] = doomed.replicas;
    const del = await callRaw(a!.url + DS_ROUTES.needle.replace(':fid', doomed.fid), { method: 'DELETE', secret: c.secret, headers: { [HEADERS.repair]: '1' } });
    expect(del.status).toBe(204);
    expect([await holds(a!.url, doomed.fid), await holds(b!.url, doomed.fid)]).toEqual([false, true]);

    await waitFor('copies settled', async () => !(await holds(b!.url, doomed.fid)), 30_000, 200);
    const s = await c.status();
    const op = s.operations.find((o) => o.kind === 'verify' && o.details?.auto === true && o.details?.repair === true && o.state === 'done');
    expect(op, JSON.stringify(s.operations)).toBeDefined();
    for (const ds of kept.replicas) expect(await holds(ds.url, kept.fid)).toBe(true);
    await expect(c.client.read(doomed.fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
  });
});
