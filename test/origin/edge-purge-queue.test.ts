// The parts of edge purge that real edges cannot show quickly: what an origin remembers of
// the URLs it served (bounded, oldest files first), that an answer from something that is
// not a purge endpoint never counts as a purge, which deletes an origin sends at all, and
// that an edge's queue stays bounded while the edge is down. Real HTTP on loopback.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/base/log.ts';
import { createMetrics } from '../../src/base/metrics.ts';
import { EdgeClient } from '../../src/clients/edge-client.ts';
import { EdgePurger } from '../../origin/edge-purge.ts';
import { ServedUrls, URLS_PER_FILE } from '../../origin/served-urls.ts';
import { freePort } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/proc.ts';

const log = createLogger({ name: 'test', level: 'silent' });
let plain: Server;
let plainUrl: string;

beforeAll(async () => {
  // an ordinary web server: answers everything 200, and says nothing of purging
  plain = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('hello'));
  await new Promise<void>((r) => plain.listen(0, '127.0.0.1', r));
  plainUrl = `http://127.0.0.1:${(plain.address() as { port: number }).port}`;
});

afterAll(() => {
  plain?.close();
});

describe('served URLs', () => {
  it('remembers each URL once per file and gives the legacy paths keys', () => {
    const s = new ServedUrls(100);
    s.note('1AAAAAQAAAAAAAAAAAAAB', '/1AAAAAQAAAAAAAAAAAAAB?w=10');
    s.note('1AAAAAQAAAAAAAAAAAAAB', '/1AAAAAQAAAAAAAAAAAAAB?w=10');
    s.note('1AAAAAQAAAAAAAAAAAAAB', '/old/a%20b.jpg', '/old/a b.jpg');
    expect(s.size).toBe(2);
    const got = s.take('1AAAAAQAAAAAAAAAAAAAB')!;
    expect(got.urls).toEqual(['/1AAAAAQAAAAAAAAAAAAAB?w=10', '/old/a%20b.jpg']);
    expect(got.keys).toEqual(['1AAAAAQAAAAAAAAAAAAAB', 'legacy-' + createHash('sha256').update('/old/a b.jpg').digest('hex').slice(0, 32)]);
    expect(s.take('1AAAAAQAAAAAAAAAAAAAB')).toBeUndefined();
    expect(s.size).toBe(0);
  });

  it('stays within its bound, forgetting the files that served nothing new for longest', () => {
    let forgotten = 0;
    const s = new ServedUrls(4, (n) => (forgotten += n));
    s.note('A', '/A?w=1');
    s.note('A', '/A?w=2');
    s.note('B', '/B?w=1');
    s.note('A', '/A?w=3'); // A served something new: B is now the oldest
    s.note('C', '/C?w=1');
    expect(s.size).toBe(4);
    expect(forgotten).toBe(1);
    expect(s.take('B')).toBeUndefined();
    expect(s.take('A')!.urls).toHaveLength(3);
    // one file's URLs are capped too (a size sweep must not push every other file out)
    const big = new ServedUrls(10_000, (n) => (forgotten += n));
    for (let i = 0; i < URLS_PER_FILE + 5; i++) big.note('D', `/D?w=${i}`);
    expect(big.size).toBe(URLS_PER_FILE);
    expect(forgotten).toBe(1 + 5);
  });
});

describe('the edge client', () => {
  it('does not count an answer without x-edge-purge as a purge', async () => {
    const edge = new EdgeClient(plainUrl);
    await expect(edge.purgeKeys(['1AAAAAQAAAAAAAAAAAAAB'])).rejects.toThrow(/not a purge endpoint/);
    await expect(edge.purgeUrl('/1AAAAAQAAAAAAAAAAAAAB?w=10')).rejects.toThrow(/not a purge endpoint/);
    expect(edge.kind).toBeUndefined();
  });
});

describe('the purge queue', () => {
  it('splits a file with many keys into key purges of 50 at most', async () => {
    // answers as deploy/varnish-edge.vcl does, and records the keys of each request
    const seen: string[][] = [];
    const edge = createServer((req, res) => {
      seen.push(String(req.headers['xkey-purge'] ?? '').split(' '));
      res.writeHead(200, { 'x-edge-purge': 'xkey' }).end();
    });
    await new Promise<void>((r) => edge.listen(0, '127.0.0.1', r));
    const { metrics } = createMetrics('origin');
    const served = new ServedUrls(1000);
    const purger = new EdgePurger({ edges: [new EdgeClient(`http://127.0.0.1:${(edge.address() as { port: number }).port}`)], webhook: undefined, served, owns: () => false, maxPending: 10, metrics, log });
    try {
      const fid = '1AAAAAQAAAAAAAAAAAAA7';
      for (let i = 0; i < 120; i++) purger.served(fid, `/old/${i}.jpg`, `/old/${i}.jpg`);
      purger.deleted([fid]);
      await waitFor('the purge confirmed', () => purger.health().edgePurgePending === 0 && seen.length > 0);
      expect(seen.map((k) => k.length)).toEqual([50, 50, 21]);
      expect(new Set(seen.flat()).size).toBe(121);
      expect(seen.flat()).toContain(fid);
    } finally {
      purger.close();
      edge.close();
    }
  });


  it('sends only what this origin served or owns, and stays bounded while the edge is down', async () => {
    const { metrics, registry } = createMetrics('origin');
    const down = `http://127.0.0.1:${await freePort()}`; // nothing listens there
    const served = new ServedUrls(100);
    const purger = new EdgePurger({ edges: [new EdgeClient(down)], webhook: undefined, served, owns: (fid) => fid.endsWith('O'), maxPending: 2, metrics, log });
    try {
      purger.served('1AAAAAQAAAAAAAAAAAAA1', '/1AAAAAQAAAAAAAAAAAAA1?w=5');
      // neither served here nor owned: another origin's business
      purger.deleted(['1AAAAAQAAAAAAAAAAAAAX']);
      expect(purger.health().edgePurgePending).toBe(0);
      purger.deleted(['1AAAAAQAAAAAAAAAAAAA1', '1AAAAAQAAAAAAAAAAAAAO', '1AAAAAQAAAAAAAAAAAAOO']);
      // three files for a queue of two: the oldest is dropped, counted
      expect(purger.health().edgePurgePending).toBe(2);
      const value = async (name: string, result?: string) => {
        const m = (await registry.getSingleMetric(name)!.get()).values.filter((v) => result === undefined || v.labels.result === result);
        return m.reduce((n, v) => n + v.value, 0);
      };
      expect(await value('ugcfs_edge_purges_dropped_total')).toBe(1);
      await waitFor('failed attempts', async () => (await value('ugcfs_edge_purge_requests_total', 'failed')) >= 2);
      expect(await value('ugcfs_edge_purges_pending')).toBe(2);
      // the feed's echo of a delete already queued adds nothing
      purger.deleted(['1AAAAAQAAAAAAAAAAAAAO']);
      expect(purger.health().edgePurgePending).toBe(2);
    } finally {
      purger.close();
    }
  });
});
