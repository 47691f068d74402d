// Pixel dimensions read from an image's header in JavaScript, with no decoder and no trip to
// libuv's pool: what the resize gate weighs a variant job by before sharp sees the bytes
// (origin/resize-gate.ts). JPEG (its SOF segment), PNG (IHDR) and still WebP (VP8, VP8L,
// VP8X); undefined for anything else — GIF and animated WebP (whose frame count is not in
// the header), AVIF's boxes, damaged bytes — and the caller then assumes the worst.
// Walks are bounded by the buffer, as the strippers in metadata-strip.ts are.

export interface HeaderSize {
  width: number;
  height: number;
}

const isJpegSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

function jpegSize(buf: Buffer): HeaderSize | undefined {
  let i = 2;
  while (i + 4 <= buf.length) {
    if (buf[i] !== 0xff) return undefined;
    while (i < buf.length && buf[i] === 0xff) i++; // fill bytes
    const marker = buf[i];
    i++;
    if (marker === undefined || marker === 0xd9 || marker === 0xda) return undefined; // no frame header before the scan
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) continue; // no length
    if (i + 2 > buf.length) return undefined;
    const len = buf.readUInt16BE(i);
    if (len < 2) return undefined;
    if (isJpegSof(marker)) return i + 7 <= buf.length ? { height: buf.readUInt16BE(i + 3), width: buf.readUInt16BE(i + 5) } : undefined;
    i += len;
  }
  return undefined;
}

function webpSize(buf: Buffer): HeaderSize | undefined {
  if (buf.length < 30) return undefined;
  const chunk = buf.toString('latin1', 12, 16);
  if (chunk === 'VP8 ') {
    // frame tag (3 bytes), start code 9d 01 2a, then 14-bit width and height
    if (buf[23] !== 0x9d || buf[24] !== 0x01 || buf[25] !== 0x2a) return undefined;
    return { width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
  }
  if (chunk === 'VP8L') {
    if (buf[20] !== 0x2f) return undefined;
    const bits = buf.readUInt32LE(21);
    return { width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  if (chunk === 'VP8X') {
    if ((buf[20]! & 0x02) !== 0) return undefined; // animated: frames unknown
    return { width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 };
  }
  return undefined;
}

/** The stored image's size from its header, or undefined when it cannot be read this way. */
export function headerSize(buf: Buffer): HeaderSize | undefined {
  if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8) return jpegSize(buf);
  if (buf.length >= 24 && buf.toString('latin1', 1, 4) === 'PNG' && buf.toString('latin1', 12, 16) === 'IHDR') {
    return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
  }
  if (buf.length >= 16 && buf.toString('latin1', 0, 4) === 'RIFF' && buf.toString('latin1', 8, 12) === 'WEBP') return webpSize(buf);
  return undefined;
}

/**
 * What a variant job of `source` weighs at the resize gate: its pixels from the header,
 * capped at --max-pixels (sharp refuses more); --max-pixels itself when the header does
 * not say, so an image of unknown size is taken for the largest one accepted.
 */
export function jobPixels(source: Buffer, maxPixels: number): number {
  const size = headerSize(source);
  return size ? Math.min(maxPixels, size.width * size.height) : maxPixels;
}
