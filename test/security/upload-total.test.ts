// One upload's total size is bounded: a chunked multipart body declares no length for the
// request gate to refuse, and carries up to 20 files. --max-upload-bytes bounds each file
// and the files of one request together, counted as the bytes arrive; nothing is stored
// from a refused upload, and the origin stays up for the next one. Real cluster and origin.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { CORPUS } from '../helpers/proc.ts';

const TOKEN = randomBytes(24).toString('hex');
const LIMIT = 1024 * 1024;
// About 350 KB each: three of them are over the limit together, each alone well under it.
const photo = readFileSync(join(CORPUS, 'photos', 'LadyBird.jpg'));
const BOUNDARY = 'ugcfs-test-boundary';

let cluster: Cluster;

/** A multipart body of `count` copies of the photo, sent chunked: no content-length. */
async function uploadChunked(count: number): Promise<{ status: number; body: any }> {
  async function* parts(): AsyncGenerator<Buffer> {
    for (let i = 0; i < count; i++) {
      yield Buffer.from(`--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="p${i}.jpg"\r\ncontent-type: image/jpeg\r\n\r\n`);
      for (let o = 0; o < photo.length; o += 64 * 1024) yield photo.subarray(o, o + 64 * 1024);
      yield Buffer.from('\r\n');
    }
    yield Buffer.from(`--${BOUNDARY}--\r\n`);
  }
  const r = await request(`${cluster.origin!.url}/upload`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
    body: Readable.from(parts()),
  });
  const text = await r.body.text();
  return { status: r.statusCode, body: text === '' ? undefined : JSON.parse(text) };
}

/** Live records on every data server together (each file counts once per copy). */
async function storedFiles(): Promise<number> {
  let n = 0;
  for (const ds of cluster.dataservers) {
    const r = await fetch(`${ds.url}/blocks`, { headers: { 'x-ugcfs-secret': cluster.secret } });
    for (const b of (await r.json()) as Array<{ liveCount: number }>) n += b.liveCount;
  }
  return n;
}

beforeAll(async () => {
  cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [''], origin: true, originArgs: ['--max-upload-bytes', String(LIMIT)], env: { UGCFS_UPLOAD_TOKENS: TOKEN } });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('the total size of one upload', () => {
  it('is bounded across the files of a chunked multipart body: 413, nothing stored', async () => {
    expect(photo.length * 3).toBeGreaterThan(LIMIT);
    const before = await storedFiles();
    const r = await uploadChunked(3);
    expect(r.status).toBe(413);
    expect(r.body.error.code).toBe('UGCFS_ERR_TOO_LARGE');
    expect(await storedFiles()).toBe(before);
  });

  it('takes files that fit together, and the origin is still serving', async () => {
    const r = await uploadChunked(2);
    expect(r.status).toBe(201);
    expect(r.body.files).toHaveLength(2);
    const got = await fetch(`${cluster.origin!.url}/${r.body.files[0].fid}.jpg`);
    expect(got.status).toBe(200);
    // stored as uploaded less its metadata (EXIF is stripped on upload)
    expect(got.headers.get('content-type')).toBe('image/jpeg');
    expect(Math.abs((await got.arrayBuffer()).byteLength - photo.length)).toBeLessThan(4096);
  });
});
