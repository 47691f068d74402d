// POST /upload: one or many multipart `file` fields, or one raw body. Every file is checked
// (type from the bytes against --upload-types and its size limit; images: pixel limit,
// decodability, metadata stripped) before any is stored, so a bad file in a batch stores
// nothing; a storage failure mid-batch deletes what the batch stored.
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { UgcfsError, isUgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { FileStore } from './file-store.ts';
import { checkUploadedFile, IMAGE_UPLOAD_TYPES, parseUploadTypes, type CheckedFile, type UploadClaim } from './file-check.ts';
import type { PipelineLimits } from './image-pipeline.ts';
import type { ResizeGate } from './resize-gate.ts';
import { callerOf, type AuthConfig } from './upload-auth.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { UploadQuota } from './flood-control.ts';

export const MAX_FILES_PER_UPLOAD = 20;

export interface UploadedFile {
  fid: string;
  url: string;
  size: number;
  mime: string;
  /** null for files that are not images */
  width: number | null;
  height: number | null;
  sha256: string;
}

export interface UploadDeps {
  store: FileStore;
  /** upload decodes: slots of their own, so variant misses cannot starve uploads */
  gate: ResizeGate;
  /** uploads per upload owner (--upload-rate, --upload-burst); the admin is not limited */
  limiter?: RateLimiter;
  /** --quota-bytes per upload owner; the admin has none */
  quota?: UploadQuota;
  limits: PipelineLimits;
  auth: AuthConfig;
  maxUploadBytes: number;
  /** --upload-types (default: the image types), each type's limit defaulting to maxUploadBytes */
  uploadTypes?: readonly string[];
  metrics: Metrics;
  log: Logger;
  /** base URL for the `url` field of answers */
  publicUrl: () => string;
}

/**
 * The `file` parts of a multipart upload. `maxBytes` bounds each file and all of them
 * together, counted as the bytes arrive: a chunked body declares no length for the request
 * gate to refuse, and 20 files at the per-file limit would otherwise be held at once.
 */
async function multipartFiles(req: FastifyRequest, maxBytes: number): Promise<Array<UploadClaim & { data: Buffer }>> {
  const files: Array<UploadClaim & { data: Buffer }> = [];
  let total = 0;
  try {
    for await (const part of req.parts({ limits: { fileSize: maxBytes, files: MAX_FILES_PER_UPLOAD, fields: 20, parts: MAX_FILES_PER_UPLOAD + 20 } })) {
      if (part.type !== 'file') continue;
      if (part.fieldname !== 'file') {
        part.file.resume(); // other file fields are not ours; drain them
        continue;
      }
      const chunks: Buffer[] = [];
      for await (const chunk of part.file as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > maxBytes) throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `the files of one upload are larger than ${maxBytes} bytes together`);
        chunks.push(chunk);
      }
      // busboy reports `text/plain` for a part that names no type (RFC 7578's default), so
      // that value claims nothing here: a part without a Content-Type is no lie.
      files.push({ data: Buffer.concat(chunks), declared: part.mimetype === 'text/plain' ? undefined : part.mimetype, filename: part.filename });
    }
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'FST_REQ_FILE_TOO_LARGE' || code === 'FST_ERR_CTP_BODY_TOO_LARGE') throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `a file is larger than ${maxBytes} bytes`);
    if (code === 'FST_FILES_LIMIT') throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `at most ${MAX_FILES_PER_UPLOAD} files per upload`);
    if (isUgcfsError(err)) throw err;
    throw new UgcfsError('UGCFS_ERR_BAD_MULTIPART', `the multipart body is malformed: ${(err as Error).message}`);
  }
  if (files.length === 0) throw new UgcfsError('UGCFS_ERR_BAD_MULTIPART', 'the multipart body has no `file` field');
  return files;
}

export async function registerUpload(app: FastifyInstance, d: UploadDeps): Promise<void> {
  // Parsed before the origin listens: a bad --upload-types stops the start (exit 2).
  const policy = parseUploadTypes(d.uploadTypes ?? IMAGE_UPLOAD_TYPES, d.maxUploadBytes);
  await app.register(multipart, { throwFileSizeLimit: true });

  // The per-token rate is spent in onRequest (after the server's auth gate, before fastify
  // reads the body), so a token over its rate costs no body bytes.
  const rateLimit = async (req: FastifyRequest) => {
    if (!d.limiter?.enabled) return;
    let caller;
    try {
      caller = callerOf(req, d.auth);
    } catch {
      return; // the handler answers the 401 and counts it
    }
    if (caller.admin) return;
    try {
      d.limiter.take(caller.owner);
    } catch (err) {
      d.metrics.uploads.inc({ result: 'refused' });
      throw err;
    }
  };

  app.post('/upload', { bodyLimit: policy.maxBytes, config: { auth: 'upload' }, onRequest: rateLimit }, async (req, reply) => {
    let caller;
    try {
      caller = callerOf(req, d.auth);
    } catch (err) {
      d.metrics.uploads.inc({ result: 'unauthorized' });
      throw err;
    }
    let checked: CheckedFile[];
    try {
      let bodies: Array<UploadClaim & { data: Buffer }>;
      if (req.isMultipart()) {
        bodies = await multipartFiles(req, policy.maxBytes);
      } else {
        const body = req.body;
        if (body === undefined || body === null || (Buffer.isBuffer(body) && body.length === 0)) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'the upload has no bytes');
        // JSON and other parsed bodies are not files of an allowed type; only raw bytes are.
        if (!Buffer.isBuffer(body)) throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', `the body was sent as ${JSON.stringify(String(req.headers['content-type'] ?? '').slice(0, 60))}, which is parsed, not stored: send raw bytes (e.g. application/octet-stream) or multipart`);
        bodies = [{ data: body, declared: req.headers['content-type'] }];
      }
      checked = [];
      for (const b of bodies) checked.push(await checkUploadedFile(b.data, b, policy, d.limits, (job) => d.gate.run(job)));
    } catch (err) {
      d.metrics.uploads.inc({ result: 'refused' });
      throw err;
    }
    // Counted before storing, so origins sharing the count cannot together overshoot it.
    const quota = caller.admin ? undefined : d.quota;
    const bytes = checked.reduce((n, c) => n + c.data.length, 0);
    try {
      await quota?.reserve(caller.owner, bytes);
    } catch (err) {
      d.metrics.uploads.inc({ result: 'refused' });
      throw err;
    }
    const stored: UploadedFile[] = [];
    try {
      for (const c of checked) {
        const { fid } = await d.store.put(c.data, { mime: c.mime, owner: caller.owner });
        stored.push({
          fid,
          url: `${d.publicUrl()}/${fid}.${c.ext}`,
          size: c.data.length,
          mime: c.mime,
          width: c.width,
          height: c.height,
          sha256: createHash('sha256').update(c.data).digest('hex'),
        });
      }
    } catch (err) {
      d.metrics.uploads.inc({ result: 'failed' });
      const undone = await Promise.all(stored.map((f) => d.store.delete(f.fid).then(() => f.size, (e: unknown) => {
        d.log.warn({ fid: f.fid, err: (e as Error).message }, 'could not undo a partial upload');
        return 0;
      })));
      // What is still stored (an undo that failed) stays counted.
      const kept = stored.reduce((n, f) => n + f.size, 0) - undone.reduce((n, b) => n + b, 0);
      await quota?.release(caller.owner, bytes - kept);
      throw err;
    }
    d.metrics.uploads.inc({ result: 'ok' }, stored.length);
    req.log.info({ files: stored.map((f) => f.fid), owner: caller.owner }, 'uploaded');
    reply.code(201).header('cache-control', 'no-store');
    return { files: stored };
  });
}
