// Lossless metadata removal for the containers we can walk ourselves (JPEG, PNG, WebP):
// the compressed pixels are copied untouched, so an original stays byte-exact from upload
// to every later read, while EXIF (GPS, camera serials), XMP, IPTC, comments, thumbnails
// and anything appended after the image end are dropped. JPEG keeps its orientation as a
// minimal EXIF block holding only that tag, so no pixels need re-encoding. Walkers are
// bounded by the buffer and never follow offsets in loops, so malformed metadata cannot
// hang them. Anything they cannot handle is reported, and the caller re-encodes instead.

export interface StripResult {
  data: Buffer;
  /** EXIF orientation 1..8 found in the input (1 when none) */
  orientation: number;
  /** the input had an orientation this container cannot carry after stripping: re-encode upright */
  needsReencode: boolean;
}

/** Reads the Orientation tag (0x0112) from IFD0 of a TIFF-structured EXIF payload (after "Exif\0\0"). */
export function exifOrientation(tiff: Buffer): number {
  if (tiff.length < 8) return 1;
  const order = tiff.toString('latin1', 0, 2);
  if (order !== 'II' && order !== 'MM') return 1;
  const le = order === 'II';
  const u16 = (at: number) => (le ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (le ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  if (u16(2) !== 42) return 1;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > tiff.length) return 1;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const at = ifd + 2 + i * 12;
    if (at + 12 > tiff.length) return 1;
    if (u16(at) === 0x0112 && u16(at + 2) === 3) {
      const v = u16(at + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

const EXIF_HEADER = Buffer.from('Exif\0\0', 'latin1');

/** An APP1 segment with an EXIF block holding nothing but the orientation. */
function orientationApp1(orientation: number): Buffer {
  const tiff = Buffer.alloc(26);
  tiff.write('MM', 0, 'latin1');
  tiff.writeUInt16BE(42, 2);
  tiff.writeUInt32BE(8, 4);
  tiff.writeUInt16BE(1, 8); // one entry
  tiff.writeUInt16BE(0x0112, 10);
  tiff.writeUInt16BE(3, 12); // SHORT
  tiff.writeUInt32BE(1, 14);
  tiff.writeUInt16BE(orientation, 18);
  tiff.writeUInt32BE(0, 22); // no next IFD
  const seg = Buffer.alloc(4 + EXIF_HEADER.length + tiff.length);
  seg[0] = 0xff;
  seg[1] = 0xe1;
  seg.writeUInt16BE(seg.length - 2, 2);
  EXIF_HEADER.copy(seg, 4);
  tiff.copy(seg, 4 + EXIF_HEADER.length);
  return seg;
}

function startsWith(buf: Buffer, at: number, text: string): boolean {
  return buf.length >= at + text.length && buf.toString('latin1', at, at + text.length) === text;
}

/** Which JPEG marker segments survive: structure, JFIF, ICC profile and Adobe colour info. */
function keepJpegSegment(marker: number, buf: Buffer, payload: number): boolean {
  if (marker === 0xfe) return false; // COM
  if (marker < 0xe0 || marker > 0xef) return true; // tables, frame, scan headers
  if (marker === 0xe0) return startsWith(buf, payload, 'JFIF\0');
  if (marker === 0xe2) return startsWith(buf, payload, 'ICC_PROFILE\0');
  if (marker === 0xee) return startsWith(buf, payload, 'Adobe');
  return false; // EXIF/XMP (APP1), MPF, IPTC (APP13), vendor blocks
}

/** Returns undefined when the bytes are not a walkable JPEG. */
export function stripJpeg(buf: Buffer): StripResult | undefined {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) return undefined;
  const out: Buffer[] = [buf.subarray(0, 2)];
  let orientation = 1;
  let exifAt = -1; // index in `out` where the orientation block goes
  let i = 2;
  let inScan = false;
  let scanStart = 0;
  while (i < buf.length) {
    if (inScan) {
      // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or a restart marker inside it.
      if (buf[i] !== 0xff || i + 1 >= buf.length) { i++; continue; }
      const n = buf[i + 1]!;
      if (n === 0x00 || (n >= 0xd0 && n <= 0xd7) || n === 0xff) { i += n === 0xff ? 1 : 2; continue; }
      out.push(buf.subarray(scanStart, i));
      inScan = false;
      continue;
    }
    // Stray bytes between segments: decoders skip them with a warning, so skip them too.
    if (buf[i] !== 0xff) { i++; continue; }
    while (i < buf.length && buf[i] === 0xff) i++; // fill bytes
    if (i >= buf.length) break;
    const marker = buf[i]!;
    const segStart = i - 1;
    i++;
    if (marker === 0xd9) { out.push(Buffer.from([0xff, 0xd9])); break; } // EOI: drop any trailer
    if ((marker >= 0xd0 && marker <= 0xd7) || marker === 0x01) { out.push(Buffer.from([0xff, marker])); continue; }
    if (i + 2 > buf.length) break;
    const len = buf.readUInt16BE(i);
    if (len < 2) return undefined;
    const end = i + len;
    const payload = i + 2;
    if (marker === 0xe1 && startsWith(buf, payload, 'Exif\0\0') && exifAt < 0) {
      orientation = exifOrientation(buf.subarray(payload + 6, Math.min(end, buf.length)));
      exifAt = out.length;
    } else if (keepJpegSegment(marker, buf, payload)) {
      out.push(buf.subarray(segStart, Math.min(end, buf.length)));
    }
    i = end;
    if (marker === 0xda) { inScan = true; scanStart = i; }
  }
  if (inScan) out.push(buf.subarray(scanStart)); // truncated: keep what there is; validation decides
  if (orientation !== 1) out.splice(exifAt, 0, orientationApp1(orientation));
  return { data: Buffer.concat(out), orientation, needsReencode: false };
}

// Chunks a browser needs to render a PNG the same way (colour, transparency, animation);
// text, time and EXIF chunks, and unknown ancillary chunks, are dropped.
const PNG_KEEP = new Set(['IHDR', 'PLTE', 'IDAT', 'IEND', 'tRNS', 'cHRM', 'gAMA', 'iCCP', 'sBIT', 'sRGB', 'cICP', 'mDCV', 'cLLI', 'bKGD', 'hIST', 'pHYs', 'sPLT', 'acTL', 'fcTL', 'fdAT']);

export function stripPng(buf: Buffer): StripResult | undefined {
  if (buf.length < 8 || !startsWith(buf, 0, '\x89PNG\r\n\x1a\n')) return undefined;
  const out: Buffer[] = [buf.subarray(0, 8)];
  let orientation = 1;
  let i = 8;
  while (i + 8 <= buf.length) {
    const len = buf.readUInt32BE(i);
    const type = buf.toString('latin1', i + 4, i + 8);
    const end = i + 12 + len;
    if (len > 0x7fffffff) return undefined;
    const critical = type.charCodeAt(0) < 0x61;
    if (type === 'eXIf') orientation = exifOrientation(buf.subarray(i + 8, Math.min(i + 8 + len, buf.length)));
    if (PNG_KEEP.has(type) || critical) out.push(buf.subarray(i, Math.min(end, buf.length)));
    i = end;
    if (type === 'IEND') break; // anything after IEND is dropped
  }
  return { data: Buffer.concat(out), orientation, needsReencode: orientation !== 1 };
}

const VP8X_EXIF = 0x08;
const VP8X_XMP = 0x04;

export function stripWebp(buf: Buffer): StripResult | undefined {
  if (buf.length < 12 || !startsWith(buf, 0, 'RIFF') || !startsWith(buf, 8, 'WEBP')) return undefined;
  const riffEnd = Math.min(buf.length, 8 + buf.readUInt32LE(4));
  const out: Buffer[] = [];
  let orientation = 1;
  let i = 12;
  while (i + 8 <= riffEnd) {
    const type = buf.toString('latin1', i, i + 4);
    const len = buf.readUInt32LE(i + 4);
    const end = i + 8 + len + (len & 1);
    if (type === 'EXIF') {
      const data = buf.subarray(i + 8, Math.min(i + 8 + len, buf.length));
      orientation = exifOrientation(startsWith(data, 0, 'Exif\0\0') ? data.subarray(6) : data);
    } else if (type !== 'XMP ') {
      let chunk = buf.subarray(i, Math.min(end, buf.length));
      if (type === 'VP8X' && chunk.length > 8) {
        chunk = Buffer.from(chunk);
        chunk[8] = chunk[8]! & ~(VP8X_EXIF | VP8X_XMP);
      }
      out.push(chunk);
    }
    i = end;
  }
  const body = Buffer.concat(out);
  const header = Buffer.alloc(12);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(4 + body.length, 4);
  header.write('WEBP', 8, 'latin1');
  return { data: Buffer.concat([header, body]), orientation, needsReencode: orientation !== 1 };
}
