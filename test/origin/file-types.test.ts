// Seller uploads beyond images (`--upload-types`, each type with its own size limit, types
// told from the bytes and never from headers), and the admin commands' side of "every
// file": `ugcfs put --json` names the file it stored, `ugcfs get FID -o -` writes the bytes
// to stdout. Real processes: a name server, two data servers, origins, the CLI.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BIN, NODE_FLAGS, ROOT, run } from '../helpers/proc.ts';
import { corpus, http, scratchDir, startEnv, startOrigin, stopAll, storedBytes, UPLOAD_AUTH, UPLOAD_TOKEN, type Env, type Res } from './origin-env.ts';

let env: Env;
/** the default origin: images only */
let plain: string;
/** `--upload-types image/*,application/pdf=64k,text/csv` */
let typed: string;

/** A small PDF of `size` bytes (padded with a comment), generated here. */
function pdf(size = 600): Buffer {
  const head = '%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%';
  const tail = '\ntrailer << /Root 1 0 R >>\n%%EOF\n';
  return Buffer.from(head + 'x'.repeat(Math.max(0, size - head.length - tail.length)) + tail);
}
/** The start of an MP4 file: an `ftyp` box naming the isom brand, then an empty `mdat`. */
const MP4 = Buffer.concat([Buffer.from([0, 0, 0, 0x18]), Buffer.from('ftypisom\0\0\x02\0isomiso2'), Buffer.from([0, 0, 0, 8]), Buffer.from('mdat')]);
const HTML = Buffer.from('<html><body><script>fetch("/steal?c=" + document.cookie)</script></body></html>');

function post(origin: string, body: Buffer, contentType: string): Promise<Res> {
  return http(`${origin}/upload`, { method: 'POST', headers: { 'content-type': contentType, ...UPLOAD_AUTH }, body });
}

function multipart(name: string, type: string, data: Buffer): { body: Buffer; type: string } {
  const b = 'fIlEtYpEsBoUnDaRy';
  const body = Buffer.concat([
    Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: ${type}\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${b}--\r\n`),
  ]);
  return { body, type: `multipart/form-data; boundary=${b}` };
}

beforeAll(async () => {
  env = await startEnv();
  plain = (await startOrigin(env)).url;
  typed = (await startOrigin(env, ['--upload-types', 'image/*,application/pdf=64k,text/csv'])).url;
  // Something stored, so the data servers' usage is settled from the start.
  await post(plain, corpus('photos/Spring.png'), 'image/png');
});

afterAll(() => stopAll(env));

describe('--upload-types', () => {
  it('takes a PDF where it is listed, serves it inline and safely, and refuses it where it is not', async () => {
    const doc = pdf();
    const before = await storedBytes(env);
    const refused = await post(plain, doc, 'application/pdf');
    expect(refused.status).toBe(415);
    expect(refused.json().error.code).toBe('UGCFS_ERR_UNSUPPORTED_TYPE');
    expect(await storedBytes(env)).toBe(before);

    const ok = await post(typed, doc, 'application/pdf');
    expect(ok.status, ok.body.toString()).toBe(201);
    const f = ok.json().files[0];
    expect(f).toMatchObject({ size: doc.length, mime: 'application/pdf', width: null, height: null });
    expect(f.url).toBe(`${typed}/${f.fid}.pdf`);
    const got = await http(f.url);
    expect(got.status).toBe(200);
    expect(got.body.equals(doc)).toBe(true);
    expect(got.headers['content-type']).toBe('application/pdf');
    expect(got.headers['content-disposition']).toBeUndefined();
    expect(got.headers['x-content-type-options']).toBe('nosniff');
    expect(got.headers['content-security-policy']).toMatch(/sandbox/);
    const v = await http(`${typed}/${f.fid}?w=100`);
    expect(v.status).toBe(415);
    expect(v.json().error.code).toBe('UGCFS_ERR_UNSUPPORTED_TYPE');

    // Multipart, with a file name; images still go through as before on the same origin.
    const m = multipart('spec sheet.pdf', 'application/pdf', pdf(2000));
    const viaForm = await post(typed, m.body, m.type);
    expect(viaForm.status).toBe(201);
    expect(viaForm.json().files[0].mime).toBe('application/pdf');
    const img = await post(typed, corpus('photos/Aqua.jpg'), 'image/jpeg');
    expect(img.status).toBe(201);
    expect(img.json().files[0]).toMatchObject({ mime: 'image/jpeg' });
    expect(img.json().files[0].width).toBeGreaterThan(0);
  });

  it('gives each type its own size limit', async () => {
    const before = await storedBytes(env);
    const big = await post(typed, pdf(70 * 1024), 'application/pdf');
    expect(big.status).toBe(413);
    expect(big.json().error.code).toBe('UGCFS_ERR_TOO_LARGE');
    expect(big.json().error.message).toMatch(/application\/pdf file may be at most 64 KiB/);
    expect(await storedBytes(env)).toBe(before);
    // An image of that size is within the image types' limit (--max-upload-bytes).
    const photo = corpus('photos/Aqua.jpg');
    expect(photo.length).toBeGreaterThan(70 * 1024);
    expect((await post(typed, photo, 'application/octet-stream')).status).toBe(201);
  });

  it('tells text types by the bytes, and lets the declared type or name pick CSV among them', async () => {
    const csv = Buffer.from('sku,size\nA-1,42\n');
    const raw = await post(typed, csv, 'text/csv');
    expect(raw.status, raw.body.toString()).toBe(201);
    expect(raw.json().files[0].mime).toBe('text/csv; charset=utf-8');
    const form = multipart('sizes.csv', 'application/octet-stream', csv);
    expect((await post(typed, form.body, form.type)).json().files[0].mime).toBe('text/csv; charset=utf-8');
    // Plain text is not listed: the same bytes without a CSV claim are refused.
    expect((await post(typed, csv, 'application/octet-stream')).status).toBe(415);
  });

  it('refuses lying content types and types not listed, and stores nothing', async () => {
    const before = await storedBytes(env);
    const cases: Array<[string, Buffer, string, number, string, RegExp]> = [
      ['a PDF declared as a PNG', pdf(), 'image/png', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /declared image\/png but the bytes are application\/pdf/],
      ['HTML declared as a PDF', HTML, 'application/pdf', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /declared application\/pdf but the bytes are text\/html/],
      ['HTML declared as CSV', HTML, 'text/csv', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /declared text\/csv but the bytes are text\/html/],
      ['a JPEG declared as a PDF', corpus('photos/Aqua.jpg'), 'application/pdf', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /declared application\/pdf but the bytes are image\/jpeg/],
      ['HTML sent as raw bytes', HTML, 'application/octet-stream', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /text\/html, which this origin does not take/],
      ['an MP4 (not listed)', MP4, 'video/mp4', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /video\/mp4, which this origin does not take/],
      ['bytes of no known type', Buffer.concat([Buffer.from([0, 0xde, 0xad]), randomBytes(500)]), 'application/pdf', 415, 'UGCFS_ERR_UNSUPPORTED_TYPE', /cannot be told/],
    ];
    for (const [what, body, type, status, code, message] of cases) {
      const r = await post(typed, body, type);
      expect(r.status, what).toBe(status);
      expect(r.json().error.code, what).toBe(code);
      expect(r.json().error.message, what).toMatch(message);
    }
    // A lie inside a multipart batch refuses the whole batch.
    const m = multipart('photo.jpg', 'image/jpeg', pdf());
    expect((await post(typed, m.body, m.type)).status).toBe(415);
    expect(await storedBytes(env)).toBe(before);
    // A part that names no type is no lie (multipart parsers report text/plain for it).
    const untyped = Buffer.concat([Buffer.from('--nOtYpE\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'), corpus('photos/Aqua.jpg'), Buffer.from('\r\n--nOtYpE--\r\n')]);
    const noType = await post(typed, untyped, 'multipart/form-data; boundary=nOtYpE');
    expect(noType.status, noType.body.toString()).toBe(201);
    expect(noType.json().files[0].mime).toBe('image/jpeg');
  });

  it('takes video where listed, and a bad --upload-types stops the start (exit 2)', async () => {
    const video = (await startOrigin(env, ['--upload-types', 'image/jpeg,video/mp4=1M'])).url;
    const r = await post(video, MP4, 'video/mp4');
    expect(r.status, r.body.toString()).toBe(201);
    expect(r.json().files[0]).toMatchObject({ mime: 'video/mp4', size: MP4.length });
    const got = await http(r.json().files[0].url, { headers: { range: 'bytes=4-7' } });
    expect(got.status).toBe(206);
    expect(got.body.toString()).toBe('ftyp');
    // PNG is not in this origin's list.
    expect((await post(video, corpus('photos/Spring.png'), 'image/png')).status).toBe(415);

    for (const bad of ['application/x-unheard-of', 'application/pdf=lots', 'image/png=0']) {
      const res = await run(['origin', '--nameserver', env.cluster.nameserver.url, '--port', '0', '--upload-types', bad], { env: { UGCFS_CLUSTER_SECRET: env.cluster.secret, UGCFS_UPLOAD_TOKENS: UPLOAD_TOKEN } });
      expect(res.code, bad).toBe(2);
      expect(res.stderr, bad).toMatch(/--upload-types/);
    }
  });
});

/** Runs `ugcfs <args>` with stdout kept as bytes (run() decodes it as text). */
function runBytes(args: string[], extraEnv: Record<string, string>): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], { cwd: ROOT, env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout: Buffer.concat(out), stderr }));
  });
}

describe('ugcfs put --json and ugcfs get -o -', () => {
  it('names each stored file, and writes the bytes back to stdout', async () => {
    const dir = scratchDir(env);
    const bin = Buffer.concat([Buffer.from([0, 0xfe, 0xed]), randomBytes(5000)]);
    const files = { 'blob.bin': bin, 'manual.pdf': pdf(), 'photo.jpg': corpus('photos/Aqua.jpg') };
    for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
    const paths = Object.keys(files).map((n) => join(dir, n));
    const put = await env.cluster.cli(['put', ...paths, '--json', '--origin', plain]);
    expect(put.code, put.stderr).toBe(0);
    const lines = put.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.file)).toEqual(paths);
    for (const l of lines) {
      const data = files[l.file.slice(dir.length + 1) as keyof typeof files];
      expect(l).toMatchObject({ size: data.length, url: `${plain}/${l.fid}` });
      const got = await runBytes(['get', l.fid, '-o', '-'], env.cluster.env);
      expect(got.code, got.stderr).toBe(0);
      expect(got.stdout.equals(data), l.file).toBe(true);
    }
    expect(lines.map((l) => l.mime)).toEqual(['application/octet-stream', 'application/pdf', 'image/jpeg']);
    // What put labelled is what the origin serves.
    const served = await http(`${plain}/${lines[1].fid}`);
    expect(served.headers['content-type']).toBe('application/pdf');
    expect((await http(`${plain}/${lines[0].fid}`)).headers['content-disposition']).toBe('attachment');
  });
});
