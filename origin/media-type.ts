// The image types the pipeline handles (variants, metadata stripping), decided from the
// bytes alone: a declared Content-Type is never trusted. Every other type a file may have,
// and whether it is served inline, is file-type.ts's business.

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'gif' | 'avif';

export const IMAGE_MIME: Readonly<Record<ImageFormat, string>> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  avif: 'image/avif',
};

export const IMAGE_EXT: Readonly<Record<ImageFormat, string>> = {
  jpeg: 'jpg',
  png: 'png',
  webp: 'webp',
  gif: 'gif',
  avif: 'avif',
};

function ascii(buf: Buffer, at: number, text: string): boolean {
  if (buf.length < at + text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** The image format named by the magic numbers at the start of `buf`, if it is one we allow. */
export function sniffImage(buf: Buffer): ImageFormat | undefined {
  if (buf.length >= 3 && buf[0] === 0xff && buf[1] === 0xd8 && buf[2] === 0xff) return 'jpeg';
  if (ascii(buf, 0, '\x89PNG\r\n\x1a\n')) return 'png';
  if (ascii(buf, 0, 'RIFF') && ascii(buf, 8, 'WEBP')) return 'webp';
  if (ascii(buf, 0, 'GIF87a') || ascii(buf, 0, 'GIF89a')) return 'gif';
  // ISO-BMFF: the first box is `ftyp`; AVIF names `avif` (still) or `avis` (sequence) as the
  // major brand or among the compatible brands.
  if (ascii(buf, 4, 'ftyp') && buf.length >= 16) {
    const boxSize = buf.readUInt32BE(0);
    const end = Math.min(buf.length, boxSize >= 16 ? boxSize : 16, 256);
    for (let at = 8; at + 4 <= end; at += 4) {
      if (at === 12) continue; // minor version, not a brand
      if (ascii(buf, at, 'avif') || ascii(buf, at, 'avis')) return 'avif';
    }
  }
  return undefined;
}

export function formatFromMime(mime: string): ImageFormat | undefined {
  for (const [f, m] of Object.entries(IMAGE_MIME)) if (m === mime) return f as ImageFormat;
  return undefined;
}
