// A block copy (repair, move) pulls a peer's block in rounds; when the peer compacts the
// block mid-copy, its offsets change, so the pull must notice the new generation and start
// over. A thin link (a TCP proxy passing ~2 MB/s) keeps the first round in flight while
// the source compacts; the copy must end equal to the compacted source, and must have
// started over (more bytes came in than the block holds).
import { describe, expect, it } from 'vitest';
import { encodeFid } from '../../src/wire/file-id.ts';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, type ScrubResult } from '../../src/wire/protocol.ts';
import { dataserverBed } from '../helpers/dataserver-bed.ts';
import { metric } from '../helpers/metrics-scrape.ts';
import { TEST_SECRET, type Proc } from '../helpers/proc.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const SECRET = TEST_SECRET;
const bed = dataserverBed('ugcfs-pull-', { secret: SECRET, args: ['--block-size', '64m'] });
let proxy: TcpProxy | undefined;
bed.after(() => proxy?.close());

const startDs = (name: string) => bed.start(name);
const route = (ds: Proc, r: string, id: number) => ds.url + r.replace(':id', String(id));
const fid = (key: number) => encodeFid({ block: 9, key: BigInt(key), cookie: 4242 });
const copyBytesIn = (ds: Proc) => metric(ds.url, 'ugcfs_block_copy_bytes_total', { direction: 'in' });

describe('pulling a block while its source compacts it', () => {
  it('starts over on the new generation and ends equal to the compacted source', async () => {
    const [source, target] = await Promise.all([startDs('source'), startDs('target')]);
    await callJson(route(source, DS_ROUTES.block, 9), { method: 'POST', body: {}, secret: SECRET });
    const body = (k: number) => Buffer.alloc(50_000, k);
    for (let k = 1; k <= 40; k++) expect((await callRaw(source.url + DS_ROUTES.needle.replace(':fid', fid(k)), { method: 'PUT', body: body(k), secret: SECRET })).status).toBe(201);
    for (let k = 1; k <= 40; k += 2) await callRaw(source.url + DS_ROUTES.needle.replace(':fid', fid(k)), { method: 'DELETE', secret: SECRET });

    proxy = await startTcpProxy(Number(new URL(source.url).port));
    proxy.set({ bytesPerSec: 2_000_000 }); // the 2 MB block takes about a second
    const pull = callJson<{ bytes: number }>(route(target, DS_ROUTES.blockPull, 9), { method: 'POST', body: { from: proxy.url }, secret: SECRET, timeoutMs: 120_000 });
    await new Promise((r) => setTimeout(r, 300));
    const compacted = await callJson<{ afterBytes: number }>(route(source, DS_ROUTES.blockCompact, 9), { method: 'POST', secret: SECRET, timeoutMs: 60_000 });
    proxy.set({ bytesPerSec: 0 });
    const pulled = await pull;

    expect(pulled.bytes).toBe(compacted.afterBytes);
    expect(await copyBytesIn(target)).toBeGreaterThan(compacted.afterBytes); // it started over
    const [a, b] = await Promise.all([source, target].map((ds) => callJson<ScrubResult>(route(ds, DS_ROUTES.blockScrub, 9), { method: 'POST', body: {}, secret: SECRET })));
    expect(b!.bad).toEqual([]);
    expect(b!.records).toBe(a!.records);
    expect(b!.digest).toBe(a!.digest);
    for (const k of [2, 40]) expect((await callRaw(target.url + DS_ROUTES.needle.replace(':fid', fid(k)), { secret: SECRET })).body.equals(body(k))).toBe(true);
    for (const k of [1, 39]) expect((await callRaw(target.url + DS_ROUTES.needle.replace(':fid', fid(k)), { secret: SECRET })).status).toBe(404);
  });
});
