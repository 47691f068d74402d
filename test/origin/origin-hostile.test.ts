// Hostile input against a real origin: every case gets a clear 4xx with a stable code, the
// cluster stores nothing for refused uploads, and the origin stays healthy throughout.
import { deflateSync, crc32 } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { corpus, http, rawGet, startEnv, startOrigin, stopAll, storedBytes as settledBytes, upload, UPLOAD_AUTH, type Env } from './origin-env.ts';

let env: Env;
let origin: string;
let fid: string;

beforeAll(async () => {
  env = await startEnv();
  origin = (await startOrigin(env, ['--max-upload-bytes', '300000'])).url;
  fid = (await upload(origin, corpus('photos/Aqua.jpg'))).fid;
});
afterAll(() => stopAll(env));

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A PNG whose header claims 30000x30000 (900 megapixels) with a tiny compressed body. */
function bombPng(): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(30000, 0);
  ihdr.writeUInt32BE(30000, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  // A few rows of zeros; a decoder would have to inflate ~112 MB of them to finish.
  return Buffer.concat([Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'), pngChunk('IHDR', ihdr), pngChunk('IDAT', deflateSync(Buffer.alloc(3751 * 64))), pngChunk('IEND', Buffer.alloc(0))]);
}

const storedBytes = () => settledBytes(env);

async function post(body: Buffer | string, headers: Record<string, string> = {}) {
  return http(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', ...UPLOAD_AUTH, ...headers }, body });
}

function multipart(parts: Array<{ name: string; filename?: string; data: Buffer | string }>, boundary = 'XyZbOuNdArY'): { body: Buffer; headers: Record<string, string> } {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    chunks.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n${p.filename ? 'Content-Type: image/jpeg\r\n' : ''}\r\n`));
    chunks.push(Buffer.isBuffer(p.data) ? p.data : Buffer.from(p.data));
    chunks.push(Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } };
}

describe('hostile uploads', () => {
  it('refuse each bad upload with its own stable code and store nothing', async () => {
    const aqua = corpus('photos/Aqua.jpg');
    const before = await storedBytes();
    const cases: Array<[string, () => Promise<{ status: number; json: () => any }>, number, string]> = [
      ['a good image without an upload token', () => http(`${origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: corpus('exif/f1-exif.jpg') }), 401, 'UGCFS_ERR_UNAUTHORIZED'],
      ['a good image with a wrong upload token', () => post(corpus('exif/f1-exif.jpg'), { authorization: `Bearer ${'x'.repeat(40)}` }), 401, 'UGCFS_ERR_UNAUTHORIZED'],
      ['900-megapixel PNG', () => post(bombPng()), 422, 'UGCFS_ERR_TOO_MANY_PIXELS'],
      ['HTML sent as image/jpeg', () => post('<html><script>alert(document.cookie)</script></html>', { 'content-type': 'image/jpeg' }), 415, 'UGCFS_ERR_UNSUPPORTED_TYPE'],
      ['HTML behind a JPEG magic number', () => post(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.from('<html><script>alert(1)</script>')])), 422, 'UGCFS_ERR_BAD_IMAGE'],
      ['truncated JPEG', () => post(aqua.subarray(0, Math.floor(aqua.length / 2))), 422, 'UGCFS_ERR_BAD_IMAGE'],
      ['JPEG with a corrupted scan', () => post(Buffer.concat([aqua.subarray(0, 4000), Buffer.alloc(4000, 0xff), aqua.subarray(8000)])), 422, 'UGCFS_ERR_BAD_IMAGE'],
      ['empty body', () => post(Buffer.alloc(0)), 400, 'UGCFS_ERR_EMPTY_BODY'],
      ['body over --max-upload-bytes', () => post(corpus('photos/wood-d.webp')), 413, 'UGCFS_ERR_TOO_LARGE'],
      ['multipart with no file', () => { const m = multipart([{ name: 'title', data: 'hello' }]); return post(m.body, m.headers); }, 400, 'UGCFS_ERR_BAD_MULTIPART'],
      ['multipart with the wrong field name', () => { const m = multipart([{ name: 'image', filename: 'a.jpg', data: aqua }]); return post(m.body, m.headers); }, 400, 'UGCFS_ERR_BAD_MULTIPART'],
      ['multipart without its closing boundary', () => { const m = multipart([{ name: 'file', filename: 'a.jpg', data: aqua }]); return post(m.body.subarray(0, m.body.length - 20), m.headers); }, 400, 'UGCFS_ERR_BAD_MULTIPART'],
      ['multipart file over the limit', () => { const m = multipart([{ name: 'file', filename: 'a.webp', data: corpus('photos/wood-d.webp') }]); return post(m.body, m.headers); }, 413, 'UGCFS_ERR_TOO_LARGE'],
      ['a batch with one bad file', () => { const m = multipart([{ name: 'file', filename: 'ok.jpg', data: corpus('exif/f1-exif.jpg') }, { name: 'file', filename: 'bad.jpg', data: aqua.subarray(0, 5000) }]); return post(m.body, m.headers); }, 422, 'UGCFS_ERR_BAD_IMAGE'],
    ];
    for (const [what, send, status, code] of cases) {
      const r = await send();
      expect(r.status, what).toBe(status);
      expect(r.json().error.code, what).toBe(code);
    }
    // The data servers' usage only moves with stored records: none were.
    expect(await storedBytes()).toBe(before);
    expect((await http(`${origin}/healthz`)).status).toBe(200);
  });

  it('accepts the malformed-EXIF JPEG without hanging, and strips the EXIF', async () => {
    const f = await upload(origin, corpus('exif/infinite_loop_exif.jpg'));
    const r = await http(`${origin}/${f.fid}`);
    expect(r.status).toBe(200);
    const meta = await sharp(r.body).metadata();
    expect(meta.exif?.length ?? 0).toBeLessThan(64);
    expect(meta.xmp).toBeUndefined();
    expect((await http(`${origin}/${f.fid}?w=4&fmt=png`)).status).toBe(200);
  });
});

describe('hostile URLs', () => {
  it('refuse absurd paths, sizes and qualities with stable codes', async () => {
    const cases: Array<[string, number, string]> = [
      ['/' + 'a'.repeat(10_000), 400, 'UGCFS_ERR_BAD_PATH'],
      [`/${fid}.jpg_` + '9'.repeat(10_000) + 'x1.jpg', 400, 'UGCFS_ERR_BAD_PATH'],
      ['/uploads/' + 'x/'.repeat(1000) + 'a.jpg', 400, 'UGCFS_ERR_BAD_PATH'],
      ['/uploads/%2e%2e/%2e%2e/%2e%2e/etc/passwd', 400, 'UGCFS_ERR_BAD_PATH'],
      ['/a%00b.jpg', 400, 'UGCFS_ERR_BAD_PATH'],
      ['/../../etc/passwd', 400, 'UGCFS_ERR_BAD_PATH'],
      ['/uploads/%C0%AE%C0%AE/x.jpg', 400, 'UGCFS_ERR_BAD_PATH'],
      [`/${fid}?w=100000`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?w=-5`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?w=1e9`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?q=1000`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?q=0`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?dpr=10`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?fmt=svg`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?callback=x`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}.jpg_99999x99999.jpg`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}.jpg_400x400q999.jpg`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}.jpg_400x400.html`, 400, 'UGCFS_ERR_BAD_PARAM'],
      [`/${fid}?w=8000&h=8000&dpr=3`, 422, 'UGCFS_ERR_OUTPUT_TOO_LARGE'],
      ['/1AAAAAQAAAAAAAAGWdoQ!', 404, 'UGCFS_ERR_LEGACY_NOT_FOUND'],
      // A bare % is a legal old file name, looked up rather than refused.
      ['/sale/100%.jpg', 404, 'UGCFS_ERR_LEGACY_NOT_FOUND'],
      ['/sale/100%.jpg_200x200.jpg', 404, 'UGCFS_ERR_LEGACY_NOT_FOUND'],
    ];
    for (const [path, status, code] of cases) {
      const r = await rawGet(origin, path);
      expect(r.status, path.slice(0, 80)).toBe(status);
      expect(r.json().error.code, path.slice(0, 80)).toBe(code);
      expect(r.headers['content-type'], path.slice(0, 80)).toContain('application/json');
    }
    expect((await http(`${origin}/healthz`)).status).toBe(200);
    expect((await http(`${origin}/${fid}?w=10`)).status).toBe(200);
  });

  it('serves non-image bytes in the cluster only as attachments', async () => {
    const { fid: htmlFid } = await env.cluster.client.write(Buffer.from('<html><script>alert(1)</script></html>'), { mime: 'text/html', owner: 'x' });
    const r = await http(`${origin}/${htmlFid}.html`);
    expect(r.status).toBe(200);
    // Typed from its bytes (docs/ORIGIN.md, "Files that are not images"), never shown inline.
    expect(r.headers['content-type']).toBe('text/html');
    expect(r.headers['content-disposition']).toBe('attachment');
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    const v = await http(`${origin}/${htmlFid}?w=10`);
    expect(v.status).toBe(415);
    expect(v.json().error.code).toBe('UGCFS_ERR_UNSUPPORTED_TYPE');
  });

  it('strips metadata from images written around the origin, too', async () => {
    const { fid: raw } = await env.cluster.client.write(corpus('exif/geodegrees_as_string.jpg'), { mime: 'image/jpeg', owner: 'x' });
    const meta = await sharp((await http(`${origin}/${raw}`)).body).metadata();
    expect(meta.exif).toBeUndefined();
  });
});

describe('storage outage', () => {
  it('answers 5xx that no CDN may cache, keeps serving its cache, and stays healthy', async () => {
    const cached = (await upload(origin, corpus('exif/f7-exif.jpg'))).fid;
    const uncached = (await upload(origin, corpus('exif/f8-exif.jpg'))).fid;
    expect((await http(`${origin}/${cached}?w=20`)).status).toBe(200);
    for (let i = 0; i < env.cluster.dataservers.length; i++) await env.cluster.killDataserver(i);
    const r = await http(`${origin}/${uncached}`);
    expect(r.status).toBeGreaterThanOrEqual(500);
    expect(r.json().error.code).toMatch(/^UGCFS_ERR_/);
    expect(r.headers['cache-control']).toBe('no-store');
    expect((await http(`${origin}/${cached}?w=20`)).headers['x-cache']).toBe('HIT');
    expect((await http(`${origin}/healthz`)).status).toBe(200);
  });
});
