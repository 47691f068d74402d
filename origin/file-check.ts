// What is stored for a file that arrives from outside: a seller's upload (only the types of
// --upload-types, each within its size limit, the type told from the bytes), or an old
// server's file (legacy read-through, `ugcfs migrate`: every file, whatever its type).
// Images go through the image pipeline's upload check (pixel limit, decode, metadata
// stripped); every other file is stored exactly as it came, its metadata untouched.
import { parseSize } from '../src/base/config.ts';
import { UgcfsError } from '../src/base/errors.ts';
import { familyOf, fileType, knownTypes, sniffType, typeByMime, typeByName } from './file-type.ts';
import { checkUpload, type PipelineLimits } from './image-pipeline.ts';
import { IMAGE_EXT, IMAGE_MIME } from './media-type.ts';

export interface CheckedFile {
  /** the bytes to store: metadata stripped from images, anything else as it came */
  data: Buffer;
  /** the Content-Type it is stored and served with */
  mime: string;
  /** the extension its URL gets */
  ext: string;
  /** images only: as displayed (EXIF orientation applied) */
  width: number | null;
  height: number | null;
}

export type DecodeSlot = <T>(job: () => Promise<T>) => Promise<T>;

async function checkedImage(bytes: Buffer, limits: PipelineLimits, slot: DecodeSlot): Promise<CheckedFile> {
  const c = await checkUpload(bytes, limits, slot);
  return { data: c.data, mime: c.mime, ext: IMAGE_EXT[c.format], width: c.width, height: c.height };
}

/**
 * A file from an old server (read-through, migration), named by its old path: an image is
 * checked and cleaned like an upload (a damaged one is refused), anything else is kept
 * byte for byte with its type from the bytes or, failing that, the name.
 */
export async function checkLegacyFile(bytes: Buffer, name: string, limits: PipelineLimits, slot: DecodeSlot): Promise<CheckedFile> {
  if (bytes.length === 0) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'the file is empty (the cluster stores no empty files)');
  const t = fileType(bytes, typeByName(name));
  if (t.image) return checkedImage(bytes, limits, slot);
  return { data: bytes, mime: t.mime, ext: t.ext, width: null, height: null };
}

/** --upload-types, parsed: the types sellers may upload and each one's size limit. */
export interface UploadPolicy {
  /** type -> largest accepted file of that type */
  readonly limits: ReadonlyMap<string, number>;
  /** the largest of them: the request body limit of POST /upload */
  readonly maxBytes: number;
}

/** The pipeline's image types: the default of --upload-types, and what `image/*` stands for. */
export const IMAGE_UPLOAD_TYPES: readonly string[] = Object.values(IMAGE_MIME);

/**
 * Parses `--upload-types`: comma-separated types, each optionally `=SIZE` (bytes, or 512k,
 * 20M, 1G: powers of 1024) for its own limit; types without one take `--max-upload-bytes`.
 * `image/*` stands for the pipeline's image types. A type the origin cannot tell from the
 * bytes, or a bad size, stops the start.
 */
export function parseUploadTypes(list: readonly string[], defaultMax: number): UploadPolicy {
  const limits = new Map<string, number>();
  const usage = (msg: string) => new UgcfsError('UGCFS_ERR_BAD_USAGE', `--upload-types: ${msg}`);
  for (const raw of list) {
    const eq = raw.indexOf('=');
    const name = (eq < 0 ? raw : raw.slice(0, eq)).trim().toLowerCase();
    let max = defaultMax;
    if (eq >= 0) {
      const text = raw.slice(eq + 1).trim();
      max = /^\d+$/.test(text) ? Number(text) : parseSize(text);
      if (!Number.isSafeInteger(max) || max < 1) throw usage(`${JSON.stringify(raw)}: the size must be a number of bytes or like 512k, 20M, 1G`);
    }
    const types = name === 'image/*' ? IMAGE_UPLOAD_TYPES : [typeByMime(name)];
    if (types[0] === undefined) throw usage(`${JSON.stringify(name)} is not a type the origin can tell from the bytes; known types: image/*, ${knownTypes().filter((t) => !IMAGE_UPLOAD_TYPES.includes(t)).join(', ')}`);
    for (const t of types as string[]) limits.set(t, max);
  }
  if (limits.size === 0) throw usage('name at least one type (default: image/*)');
  return { limits, maxBytes: Math.max(...limits.values()) };
}

/** What a request says about one file: its declared Content-Type and, in multipart, its file name. Never trusted, only checked. */
export interface UploadClaim {
  declared?: string | undefined;
  filename?: string | undefined;
}

/** Declared types that claim nothing: what clients send when they do not know. */
const NO_CLAIM = new Set(['application/octet-stream', 'application/x-www-form-urlencoded', 'binary/octet-stream', 'multipart/form-data']);

function humanSize(n: number): string {
  if (n % 2 ** 20 === 0) return `${n / 2 ** 20} MiB`;
  return n % 1024 === 0 ? `${n / 1024} KiB` : `${n} bytes`;
}

/**
 * A seller's file: its type told from the bytes (a declared type or file name may only pick
 * among the types of what the bytes show, e.g. CSV for text), allowed by the policy, within
 * that type's limit. A declared type the bytes contradict is refused as a lie; a file whose
 * bytes show no type is refused. Images are then checked and cleaned by the pipeline.
 */
export async function checkUploadedFile(bytes: Buffer, claim: UploadClaim, policy: UploadPolicy, limits: PipelineLimits, slot: DecodeSlot): Promise<CheckedFile> {
  if (bytes.length === 0) throw new UgcfsError('UGCFS_ERR_EMPTY_BODY', 'the upload has no bytes');
  const sniffed = sniffType(bytes);
  const declaredBase = claim.declared?.split(';')[0]!.trim().toLowerCase();
  const declared = declaredBase && !NO_CLAIM.has(declaredBase) ? typeByMime(declaredBase) : undefined;
  if (sniffed === undefined) throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', `the type of the bytes cannot be told; this origin takes ${[...policy.limits.keys()].join(', ')}`);
  const bytesFamily = familyOf(sniffed)!;
  if (declared !== undefined && familyOf(declared) !== bytesFamily) {
    throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', `the upload is declared ${declared} but the bytes are ${sniffed}; nothing was stored`);
  }
  const t = fileType(bytes, declared ?? typeByName(claim.filename));
  const base = t.mime.split(';')[0]!;
  const max = policy.limits.get(base);
  if (max === undefined) throw new UgcfsError('UGCFS_ERR_UNSUPPORTED_TYPE', `the bytes are ${base}, which this origin does not take; it takes ${[...policy.limits.keys()].join(', ')}`);
  if (bytes.length > max) throw new UgcfsError('UGCFS_ERR_TOO_LARGE', `a ${base} file may be at most ${humanSize(max)}; this one has ${bytes.length} bytes`);
  if (t.image) return checkedImage(bytes, limits, slot);
  return { data: bytes, mime: t.mime, ext: t.ext, width: null, height: null };
}
