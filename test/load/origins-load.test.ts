// Bounded load through two origins sharing one cluster (peers of each other): concurrent
// uploads, original reads and variant reads (undici in a loop, so uploads carry real
// bodies). The error rate must be 0 and each origin's resident memory must level off
// (sampled from /proc/<pid>/status): the second half of the run may not keep growing the
// way the first half did. A third origin with one resize slot and no queue shows overload
// answered with 503 UGCFS_ERR_BUSY + Retry-After, and then serving again — not collapse.
// UGCFS_SOAK=1 runs the load for minutes instead of seconds.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { CORPUS, start, type Proc } from '../helpers/proc.ts';
import { faultSeed, payload, seededRandom, sleep } from '../faults/fault-kit.ts';

const SOAK = process.env.UGCFS_SOAK === '1';
const ROUND_MS = SOAK ? 5 * 60_000 : 10_000;
const CONCURRENCY = 8;
/** Uploads need a token: no origin trusts a loopback address. */
const TOKEN = 'tok-load-' + randomBytes(16).toString('hex');
const UPLOAD_HEADERS = { 'content-type': 'image/jpeg', authorization: `Bearer ${TOKEN}` };

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

describe('load through two origins', () => {
  let cluster: Cluster;
  const origins: Proc[] = [];
  let tight: Proc;
  const seed = faultSeed();
  const rnd = seededRandom(seed);
  const fids: string[] = [];
  let images: Buffer[] = [];
  const totals = { requests: 0, uploads: 0, originals: 0, variants: 0, errors: 0 };
  const errors: string[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 3, replicas: 2, racks: [''], blockSize: 8 * 1024 * 1024 });
    const ports = [await freePort(), await freePort()];
    const peers = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
    const env = { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_UPLOAD_TOKENS: TOKEN };
    origins.push(
      ...(await Promise.all(
        ports.map((p) => start(['origin', '--nameserver', cluster.nameserver.url, '--port', String(p), '--peers', peers, '--memory-cache-bytes', String(16 * 1024 * 1024)], { env })),
      )),
    );
    tight = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--resize-concurrency', '1', '--resize-queue', '0', '--memory-cache-bytes', '0'], { env });
    images = await Promise.all(
      Array.from({ length: 16 }, (_, i) => sharp(payload(seededRandom(seed + i), 96 * 64 * 3), { raw: { width: 96, height: 64, channels: 3 } }).jpeg({ quality: 85 }).toBuffer()),
    );
  }, 120_000);

  afterAll(async () => {
    console.log(`load: seed=${seed} ${JSON.stringify(totals)}`);
    await Promise.all([...origins, tight].filter(Boolean).map((p) => p.kill()));
    await cluster?.stop();
  });

  async function upload(o: Proc): Promise<void> {
    const r = await request(`${o.url}/upload`, { method: 'POST', headers: UPLOAD_HEADERS, body: images[Math.floor(rnd() * images.length)]!, headersTimeout: 60_000, bodyTimeout: 60_000 });
    const text = await r.body.text();
    totals.requests++;
    if (r.statusCode !== 201) {
      totals.errors++;
      errors.push(`upload ${r.statusCode} ${text.slice(0, 200)}`);
      return;
    }
    fids.push(JSON.parse(text).files[0].fid);
    totals.uploads++;
  }

  async function read(o: Proc): Promise<void> {
    const fid = fids[Math.floor(rnd() * fids.length)]!;
    const variant = rnd() < 0.5;
    const path = variant ? `/${fid}?w=${[32, 48, 64][Math.floor(rnd() * 3)]}&fmt=webp` : `/${fid}`;
    const r = await request(o.url + path, { headersTimeout: 60_000, bodyTimeout: 60_000 });
    const body = Buffer.from(await r.body.arrayBuffer());
    totals.requests++;
    if (r.statusCode !== 200 || body.length === 0) {
      totals.errors++;
      errors.push(`GET ${path} ${r.statusCode} ${body.toString('utf8').slice(0, 200)}`);
      return;
    }
    if (variant) totals.variants++;
    else totals.originals++;
  }

  async function round(ms: number): Promise<void> {
    const until = Date.now() + ms;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async (_, w) => {
        while (Date.now() < until) {
          const o = origins[(w + Math.floor(rnd() * 2)) % 2]!;
          if (fids.length < 10 || rnd() < 0.2) await upload(o);
          else await read(o);
        }
      }),
    );
  }

  it('runs concurrent uploads and reads with error rate 0 and memory that levels off', async () => {
    const samples: number[][] = [[], []];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        origins.forEach((o, i) => samples[i]!.push(rssBytes(o.child.pid!)));
        await sleep(250);
      }
    })();
    await round(ROUND_MS);
    const afterFirst = origins.map((o) => rssBytes(o.child.pid!));
    await round(ROUND_MS);
    const afterSecond = origins.map((o) => rssBytes(o.child.pid!));
    sampling = false;
    await sampler;

    const mb = (b: number) => (b / 1048576).toFixed(0);
    console.log(`load: rss MB first sample ${samples.map((s) => mb(s[0]!))}, after round 1 ${afterFirst.map(mb)}, after round 2 ${afterSecond.map(mb)}, peak ${samples.map((s) => mb(Math.max(...s)))}`);
    expect(errors.slice(0, 5)).toEqual([]);
    expect(totals.errors).toBe(0);
    expect(totals.uploads).toBeGreaterThan(10);
    expect(totals.variants).toBeGreaterThan(10);
    // Levelling off: with the memory tier bounded at 16 MiB, the second round (same
    // workload, warm caches) may add at most 64 MiB more — a leak per request would not.
    for (let i = 0; i < origins.length; i++) expect(afterSecond[i]! - afterFirst[i]!, `origin ${i} rss growth in round 2`).toBeLessThan(64 * 1024 * 1024);
  });

  it('beyond resize capacity answers 503 UGCFS_ERR_BUSY with Retry-After, and serves again afterwards', async () => {
    const big = readFileSync(join(CORPUS, 'photos', 'Garden.jpg'));
    const up = await request(`${tight.url}/upload`, { method: 'POST', headers: UPLOAD_HEADERS, body: big, headersTimeout: 120_000, bodyTimeout: 120_000 });
    const text = await up.body.text();
    expect(up.statusCode, text).toBe(201);
    const fid = JSON.parse(text).files[0].fid as string;
    // distinct widths, so no two requests join one computation
    const answers = await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const r = await request(`${tight.url}/${fid}?w=${300 + i * 7}`, { headersTimeout: 120_000, bodyTimeout: 120_000 });
        const body = await r.body.text().catch(() => '');
        return { status: r.statusCode, retryAfter: r.headers['retry-after'], code: r.statusCode === 200 ? undefined : (JSON.parse(body).error?.code as string) };
      }),
    );
    const busy = answers.filter((a) => a.status === 503);
    const ok = answers.filter((a) => a.status === 200);
    console.log(`load: overload burst of 12 variant misses with 1 resize slot: ${ok.length} served, ${busy.length} busy`);
    expect(ok.length + busy.length).toBe(answers.length);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    for (const b of busy) {
      expect(b.code).toBe('UGCFS_ERR_BUSY');
      expect(Number(b.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    // no collapse: once the burst is over, the same variants are served
    for (const w of [300, 307]) {
      const r = await request(`${tight.url}/${fid}?w=${w}`, { headersTimeout: 120_000, bodyTimeout: 120_000 });
      await r.body.dump();
      expect(r.statusCode).toBe(200);
    }
  });
});
