// Fuzzed multipart uploads against a real origin on a real cluster. Bodies are built from
// generated parts (right and wrong field names, real images, random bytes, empty files) and
// then damaged (boundary mismatch, missing close, truncation, bare LF, garbage headers).
// Every answer must be a 201 or a 4xx carrying a stable code; a refused request must store
// nothing (live records on every data server unchanged); and nothing may hang.
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callJson } from '../../src/clients/http-client.ts';
import { DS_ROUTES, type BlockReport } from '../../src/wire/protocol.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { start, type Proc } from '../helpers/proc.ts';

const RUNS = Number(process.env.UGCFS_FUZZ_HTTP_RUNS ?? 200);
const seedOpt = process.env.UGCFS_FAULT_SEED ? { seed: Number(process.env.UGCFS_FAULT_SEED) } : {};
const REFUSALS = new Set(['UGCFS_ERR_BAD_MULTIPART', 'UGCFS_ERR_BAD_REQUEST', 'UGCFS_ERR_EMPTY_BODY', 'UGCFS_ERR_UNSUPPORTED_TYPE', 'UGCFS_ERR_BAD_IMAGE', 'UGCFS_ERR_TOO_LARGE', 'UGCFS_ERR_TOO_MANY_PIXELS']);

/** Uploads need a token: no origin trusts a loopback address. */
const TOKEN = 'tok-fuzz-' + randomBytes(16).toString('hex');

interface PartSpec {
  field: string;
  filename: string | undefined;
  type: string | undefined;
  body: 'jpeg' | 'png' | 'random' | 'empty' | 'cut-jpeg' | 'text';
}

interface Damage {
  kind: 'none' | 'wrong-boundary' | 'no-close' | 'truncate' | 'bare-lf' | 'garbage-header' | 'long-header' | 'no-boundary-param' | 'preamble' | 'quoted-boundary' | 'mixed';
  at: number;
}

describe('multipart uploads, fuzzed, against a running origin', () => {
  let cluster: Cluster;
  let origin: Proc;
  let jpeg: Buffer;
  let png: Buffer;
  const stats = { requests: 0, accepted: 0, refused: 0, codes: new Map<string, number>() };

  beforeAll(async () => {
    cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''], blockSize: 4 * 1024 * 1024 });
    origin = await start(['origin', '--nameserver', cluster.nameserver.url, '--port', '0', '--max-upload-bytes', String(256 * 1024)], { env: { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_UPLOAD_TOKENS: TOKEN } });
    jpeg = await sharp({ create: { width: 24, height: 16, channels: 3, background: { r: 200, g: 30, b: 90 } } }).jpeg().toBuffer();
    png = await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 0.5 } } }).png().toBuffer();
  }, 90_000);

  afterAll(async () => {
    console.log(`multipart fuzz: ${stats.requests} requests, ${stats.accepted} accepted, ${stats.refused} refused ${JSON.stringify(Object.fromEntries(stats.codes))}`);
    await origin?.kill();
    await cluster?.stop();
  });

  async function liveRecords(): Promise<number> {
    let n = 0;
    for (const ds of cluster.dataservers) {
      const blocks = await callJson<BlockReport[]>(ds.url + DS_ROUTES.blocks, { secret: cluster.secret });
      n += blocks.reduce((s, b) => s + b.liveCount, 0);
    }
    return n;
  }

  function bodyOf(p: PartSpec, rnd: Buffer): Buffer {
    switch (p.body) {
      case 'jpeg': return jpeg;
      case 'png': return png;
      case 'random': return rnd;
      case 'empty': return Buffer.alloc(0);
      case 'cut-jpeg': return jpeg.subarray(0, Math.max(4, Math.floor(jpeg.length / 2)));
      case 'text': return Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    }
  }

  function build(parts: PartSpec[], boundary: string, damage: Damage, rnd: Buffer): { body: Buffer; contentType: string } {
    const nl = damage.kind === 'bare-lf' ? '\n' : '\r\n';
    const chunks: Buffer[] = [];
    if (damage.kind === 'preamble') chunks.push(Buffer.from(`this is a preamble${nl}`));
    for (const p of parts) {
      let head = `--${boundary}${nl}Content-Disposition: form-data; name="${p.field}"${p.filename === undefined ? '' : `; filename="${p.filename}"`}${nl}`;
      if (p.type !== undefined) head += `Content-Type: ${p.type}${nl}`;
      if (damage.kind === 'garbage-header') head += `this line has no colon${nl}`;
      if (damage.kind === 'long-header') head += `X-Long: ${'a'.repeat(20_000)}${nl}`;
      chunks.push(Buffer.from(head + nl), bodyOf(p, rnd), Buffer.from(nl));
    }
    if (damage.kind !== 'no-close') chunks.push(Buffer.from(`--${boundary}--${nl}`));
    let body = Buffer.concat(chunks);
    if (damage.kind === 'truncate') body = body.subarray(0, damage.at % Math.max(1, body.length));
    let contentType = `multipart/form-data; boundary=${boundary}`;
    if (damage.kind === 'wrong-boundary') contentType = `multipart/form-data; boundary=${boundary}x`;
    if (damage.kind === 'no-boundary-param') contentType = 'multipart/form-data';
    if (damage.kind === 'quoted-boundary') contentType = `multipart/form-data; boundary="${boundary}"`;
    if (damage.kind === 'mixed') contentType = `multipart/mixed; boundary=${boundary}`;
    return { body, contentType };
  }

  const part = fc.record<PartSpec>({
    field: fc.constantFrom('file', 'file', 'file', 'files', 'File', 'other', ''),
    filename: fc.option(fc.constantFrom('a.jpg', 'x.png', '../../etc/passwd', 'a\u0000b.jpg', 'ü.webp', ''), { nil: undefined }),
    type: fc.option(fc.constantFrom('image/jpeg', 'image/png', 'text/html', 'application/octet-stream', 'image/svg+xml', ''), { nil: undefined }),
    body: fc.constantFrom('jpeg', 'png', 'random', 'empty', 'cut-jpeg', 'text'),
  });
  const damage = fc.record<Damage>({
    kind: fc.constantFrom('none', 'none', 'wrong-boundary', 'no-close', 'truncate', 'bare-lf', 'garbage-header', 'long-header', 'no-boundary-param', 'preamble', 'quoted-boundary', 'mixed'),
    at: fc.nat(),
  });

  it('answers 201 or a 4xx with a stable code; a refused upload stores nothing; no request hangs', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(part, { minLength: 0, maxLength: 4 }), fc.stringMatching(/^[A-Za-z0-9'()+_,.\/:=?-]{1,70}$/), damage, fc.uint8Array({ minLength: 1, maxLength: 2000 }), async (parts, boundary, dmg, rnd) => {
        const { body, contentType } = build(parts, boundary, dmg, Buffer.from(rnd));
        const before = await liveRecords();
        const res = await request(`${origin.url}/upload`, { method: 'POST', headers: { 'content-type': contentType, authorization: `Bearer ${TOKEN}` }, body, headersTimeout: 15_000, bodyTimeout: 15_000 });
        const text = await res.body.text();
        stats.requests++;
        expect(res.statusCode, text.slice(0, 300)).toBeLessThan(500);
        if (res.statusCode === 201) {
          stats.accepted++;
          const files = JSON.parse(text).files as Array<{ fid: string; size: number }>;
          // only whole, real images in `file` fields can have been accepted
          const real = parts.filter((p) => p.field === 'file' && (p.body === 'jpeg' || p.body === 'png')).length;
          expect(files.length).toBeGreaterThan(0);
          expect(files.length).toBeLessThanOrEqual(real);
          expect(await liveRecords()).toBe(before + files.length * 2);
          return;
        }
        stats.refused++;
        expect(res.statusCode).toBeGreaterThanOrEqual(400);
        const code = JSON.parse(text).error.code as string;
        stats.codes.set(code, (stats.codes.get(code) ?? 0) + 1);
        expect(REFUSALS.has(code), `${res.statusCode} ${code}`).toBe(true);
        expect(await liveRecords()).toBe(before);
      }),
      { numRuns: RUNS, ...seedOpt },
    );
    const health = await request(`${origin.url}/healthz`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  });
});
