// The type of any stored file, images or not: told from the bytes first (magic numbers,
// markup, UTF-8 text), and only when the bytes name no type, from the file's name (or the
// type recorded when it was written, which `ugcfs migrate` and `ugcfs put` take from the
// name). A name may also refine what the bytes say within one family — a ZIP named .docx,
// text named .csv, an MP4 container named .m4a — but never move a file to another family,
// so a name cannot turn markup into text or a PDF into an image. Whether a type may be shown
// inline is decided here too: markup (HTML, SVG, XML), scripts and every unknown type go
// out as attachments. The image types the pipeline handles are only ever told from the
// bytes (media-type.ts, sniffImage).
import { IMAGE_EXT, IMAGE_MIME, sniffImage, type ImageFormat } from './media-type.ts';

/** A known type: its extensions (the first is the one URLs get), what the bytes say for it, and whether it is shown inline. */
interface KnownType {
  mime: string;
  exts: readonly string[];
  /** types of one family share a container or encoding (ZIP, ISO media, UTF-8 text); a name may pick among them */
  family: string;
  inline: boolean;
}

const T = (mime: string, exts: string[], family: string, inline: boolean): KnownType => ({ mime, exts, family, inline });
const TEXT = 'text/plain';
const ZIP = 'application/zip';
const BMFF = 'video/mp4';
const XML = 'application/xml';
export const UNKNOWN_MIME = 'application/octet-stream';

const KNOWN: readonly KnownType[] = [
  ...(Object.keys(IMAGE_MIME) as ImageFormat[]).map((f) => T(IMAGE_MIME[f], f === 'jpeg' ? ['jpg', 'jpeg', 'jpe'] : [IMAGE_EXT[f]], 'image', true)),
  T('image/bmp', ['bmp'], 'image/bmp', true),
  T('image/x-icon', ['ico'], 'image/x-icon', true),
  T('image/tiff', ['tif', 'tiff'], 'image/tiff', false),
  T('image/heic', ['heic', 'heif'], BMFF, false),
  T('application/pdf', ['pdf'], 'application/pdf', true),
  T(BMFF, ['mp4', 'm4v'], BMFF, true),
  T('video/quicktime', ['mov', 'qt'], BMFF, true),
  T('audio/mp4', ['m4a'], BMFF, true),
  T('video/3gpp', ['3gp'], BMFF, true),
  T('video/webm', ['webm'], 'video/webm', true),
  T('video/x-matroska', ['mkv'], 'video/webm', false),
  T('audio/ogg', ['ogg', 'oga', 'opus'], 'audio/ogg', true),
  T('video/ogg', ['ogv'], 'audio/ogg', true),
  T('audio/wav', ['wav'], 'audio/wav', true),
  T('video/x-msvideo', ['avi'], 'video/x-msvideo', false),
  T('audio/mpeg', ['mp3'], 'audio/mpeg', true),
  T('audio/aac', ['aac'], 'audio/aac', true),
  T('audio/flac', ['flac'], 'audio/flac', true),
  T(ZIP, ['zip'], ZIP, false),
  T('application/vnd.openxmlformats-officedocument.wordprocessingml.document', ['docx'], ZIP, false),
  T('application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', ['xlsx'], ZIP, false),
  T('application/vnd.openxmlformats-officedocument.presentationml.presentation', ['pptx'], ZIP, false),
  T('application/vnd.oasis.opendocument.text', ['odt'], ZIP, false),
  T('application/epub+zip', ['epub'], ZIP, false),
  T('application/gzip', ['gz', 'tgz'], 'application/gzip', false),
  T('application/x-bzip2', ['bz2'], 'application/x-bzip2', false),
  T('application/x-xz', ['xz'], 'application/x-xz', false),
  T('application/x-7z-compressed', ['7z'], 'application/x-7z-compressed', false),
  T('application/vnd.rar', ['rar'], 'application/vnd.rar', false),
  T('font/woff', ['woff'], 'font/woff', true),
  T('font/woff2', ['woff2'], 'font/woff2', true),
  T('font/otf', ['otf'], 'font/otf', true),
  T('font/ttf', ['ttf'], 'font/ttf', true),
  T(TEXT, ['txt', 'text', 'log'], TEXT, true),
  T('text/csv', ['csv'], TEXT, true),
  T('text/tab-separated-values', ['tsv'], TEXT, true),
  T('text/markdown', ['md', 'markdown'], TEXT, true),
  T('text/css', ['css'], TEXT, true),
  T('application/json', ['json'], TEXT, true),
  T('text/yaml', ['yaml', 'yml'], TEXT, true),
  T('text/javascript', ['js', 'mjs'], TEXT, false),
  T('text/html', ['html', 'htm', 'shtml'], 'text/html', false),
  T('image/svg+xml', ['svg', 'svgz'], 'image/svg+xml', false),
  T(XML, ['xml'], XML, false),
  T('application/xhtml+xml', ['xhtml', 'xht'], XML, false),
  T('application/rss+xml', ['rss'], XML, false),
  T('application/atom+xml', ['atom'], XML, false),
];

const BY_MIME = new Map(KNOWN.map((t) => [t.mime, t]));
// Aliases old servers and tools still send or record.
for (const [alias, mime] of [['image/jpg', 'image/jpeg'], ['image/pjpeg', 'image/jpeg'], ['image/x-png', 'image/png'], ['text/xml', XML], ['application/javascript', 'text/javascript'], ['application/x-javascript', 'text/javascript'], ['audio/x-wav', 'audio/wav'], ['audio/wave', 'audio/wav'], ['audio/mp3', 'audio/mpeg'], ['application/x-gzip', 'application/gzip'], ['image/vnd.microsoft.icon', 'image/x-icon'], ['audio/x-flac', 'audio/flac'], ['application/x-rar-compressed', 'application/vnd.rar']] as const) {
  BY_MIME.set(alias, BY_MIME.get(mime)!);
}
const BY_EXT = new Map<string, KnownType>();
for (const t of KNOWN) for (const e of t.exts) if (!BY_EXT.has(e)) BY_EXT.set(e, t);

/** What the origin serves a file as. */
export interface FileType {
  /** the Content-Type, `; charset=utf-8` added for text that is valid UTF-8 */
  mime: string;
  /** the extension URLs of this type get */
  ext: string;
  /** false: `Content-Disposition: attachment` (markup, scripts, archives, unknown types) */
  inline: boolean;
  /** set when the pipeline handles it (variants, metadata stripping) */
  image: ImageFormat | undefined;
}

/** The known type a recorded or declared MIME names (parameters and case ignored), if any. */
export function typeByMime(mime: string | undefined): string | undefined {
  if (!mime) return undefined;
  return BY_MIME.get(mime.split(';')[0]!.trim().toLowerCase())?.mime;
}

/** The known type a file name's extension names, if any. */
export function typeByName(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0 && !(dot === 0 && base.length > 1)) return undefined;
  return BY_EXT.get(base.slice(dot + 1).toLowerCase())?.mime;
}

/** Every type the origin knows by name, for messages and docs. */
export function knownTypes(): string[] {
  return KNOWN.map((t) => t.mime);
}

/** The family of a known type or alias; undefined for unknown types. */
export function familyOf(mime: string): string | undefined {
  return BY_MIME.get(mime.split(';')[0]!.trim().toLowerCase())?.family;
}

function ascii(buf: Buffer, at: number, text: string): boolean {
  if (buf.length < at + text.length) return false;
  for (let i = 0; i < text.length; i++) if (buf[at + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** ISO base media: the major and compatible brands of the leading `ftyp` box decide. */
function bmffType(buf: Buffer): string | undefined {
  if (!ascii(buf, 4, 'ftyp') || buf.length < 12) return undefined;
  const end = Math.min(buf.length, Math.max(16, buf.readUInt32BE(0)), 256);
  const brands: string[] = [];
  for (let at = 8; at + 4 <= end; at += 4) if (at !== 12) brands.push(buf.toString('latin1', at, at + 4));
  if (brands.some((b) => ['heic', 'heix', 'heim', 'heis', 'hevc', 'mif1', 'msf1'].includes(b)) && !brands.some((b) => b.startsWith('mp4') || b === 'isom')) return 'image/heic';
  if (brands[0] === 'qt  ') return 'video/quicktime';
  if (brands[0] === 'M4A ' || brands[0] === 'M4B ') return 'audio/mp4';
  if (brands[0]?.startsWith('3gp')) return 'video/3gpp';
  return BMFF;
}

function magicType(buf: Buffer): string | undefined {
  // PDF readers accept a header anywhere in the first 1 KB, so the sniffer does too.
  if (buf.subarray(0, 1024).includes('%PDF-')) return 'application/pdf';
  const bmff = bmffType(buf);
  if (bmff) return bmff;
  if (buf.length >= 4 && buf.readUInt32BE(0) === 0x1a45dfa3) return 'video/webm';
  if (ascii(buf, 0, 'OggS')) return 'audio/ogg';
  if (ascii(buf, 0, 'RIFF') && ascii(buf, 8, 'WAVE')) return 'audio/wav';
  if (ascii(buf, 0, 'RIFF') && ascii(buf, 8, 'AVI ')) return 'video/x-msvideo';
  if (ascii(buf, 0, 'ID3')) return 'audio/mpeg';
  if (ascii(buf, 0, 'fLaC')) return 'audio/flac';
  if (ascii(buf, 0, 'PK\x03\x04') || ascii(buf, 0, 'PK\x05\x06')) return ZIP;
  if (buf.length >= 3 && buf[0] === 0x1f && buf[1] === 0x8b && buf[2] === 8) return 'application/gzip';
  if (ascii(buf, 0, 'BZh')) return 'application/x-bzip2';
  if (ascii(buf, 0, '\xfd7zXZ\x00')) return 'application/x-xz';
  if (ascii(buf, 0, '7z\xbc\xaf\x27\x1c')) return 'application/x-7z-compressed';
  if (ascii(buf, 0, 'Rar!\x1a\x07')) return 'application/vnd.rar';
  if (ascii(buf, 0, 'wOFF')) return 'font/woff';
  if (ascii(buf, 0, 'wOF2')) return 'font/woff2';
  if (ascii(buf, 0, 'OTTO')) return 'font/otf';
  if (buf.length >= 12 && buf.readUInt32BE(0) === 0x00010000 && buf.readUInt16BE(4) > 0 && buf.readUInt16BE(4) < 64) return 'font/ttf';
  if (ascii(buf, 0, 'II*\x00') || ascii(buf, 0, 'MM\x00*')) return 'image/tiff';
  // "BM" alone is too common a start for text: the DIB header's size must be one of the real ones.
  if (ascii(buf, 0, 'BM') && buf.length >= 18 && [12, 40, 52, 56, 64, 108, 124].includes(buf.readUInt32LE(14))) return 'image/bmp';
  if (buf.length >= 6 && buf.readUInt32BE(0) === 0x00000100 && buf.readUInt16LE(4) > 0) return 'image/x-icon';
  // MPEG audio without a tag: an ADTS (AAC) or MPEG-1/2 layer I-III frame header.
  if (buf.length >= 4 && buf[0] === 0xff) {
    if ((buf[1]! & 0xf6) === 0xf0) return 'audio/aac';
    if ((buf[1]! & 0xe0) === 0xe0 && ((buf[1]! >> 1) & 3) !== 0 && (buf[2]! >> 4) !== 0xf) return 'audio/mpeg';
  }
  return undefined;
}

const HTML_TAGS = ['!doctype html', 'html', 'head', 'body', 'script', 'iframe', 'h1', 'div', 'font', 'table', 'a', 'style', 'title', 'b', 'br', 'p', 'meta', 'link', 'img', 'form', 'object', 'embed', '!--'];

/**
 * Markup, by its first non-blank characters: SVG, other XML, HTML — and anything else that
 * opens with `<` and a letter, `!` or `?` counts as HTML, the strictest of them.
 */
function markupType(buf: Buffer): string | undefined {
  let at = ascii(buf, 0, '\xef\xbb\xbf') ? 3 : 0;
  while (at < buf.length && (buf[at] === 0x20 || buf[at] === 0x09 || buf[at] === 0x0a || buf[at] === 0x0d || buf[at] === 0x0c)) at++;
  if (buf[at] !== 0x3c /* < */) return undefined;
  const head = buf.toString('latin1', at, Math.min(buf.length, at + 4096)).toLowerCase();
  if (/<svg[\s>/]/.test(head) || /<!doctype\s+svg/.test(head)) return 'image/svg+xml';
  for (const tag of HTML_TAGS) {
    if (!head.startsWith('<' + tag)) continue;
    const next = head.charAt(tag.length + 1);
    if (tag === '!--' || next === '' || next === '>' || /\s/.test(next)) return 'text/html';
  }
  if (head.startsWith('<?xml')) return XML;
  if (/^<[a-z!?]/.test(head)) return 'text/html';
  return undefined;
}

/** Valid UTF-8 with no control characters but tab, newlines, form feed and escape: text. */
function isText(buf: Buffer): boolean {
  let sample = buf.subarray(0, 8192);
  if (sample.length < buf.length) {
    // Cut at a character boundary: a sequence split by the sample's end is not an error.
    let end = sample.length;
    while (end > 0 && end > sample.length - 4 && (sample[end - 1]! & 0xc0) === 0x80) end--;
    if (end > 0 && sample[end - 1]! >= 0xc0) end--;
    sample = sample.subarray(0, end);
  }
  for (const b of sample) if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d && b !== 0x0c && b !== 0x1b) || b === 0x7f) return false;
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(sample);
    return true;
  } catch {
    return false;
  }
}

/** The known type the bytes alone show, if any: what every other decision starts from. */
export function sniffType(buf: Buffer): string | undefined {
  if (buf.length === 0) return undefined;
  const image = sniffImage(buf);
  if (image) return IMAGE_MIME[image];
  return magicType(buf) ?? markupType(buf) ?? (isText(buf) ? TEXT : undefined);
}

function served(t: KnownType, image: ImageFormat | undefined, utf8: boolean): FileType {
  const text = t.family === TEXT || t.mime.startsWith('text/');
  return { mime: utf8 && text ? `${t.mime}; charset=utf-8` : t.mime, ext: t.exts[0]!, inline: t.inline, image };
}

/**
 * The type a file is served as: the bytes' own when they show one — refined by `hint` (a
 * known type from the name or the record) only within the same family —, else the hint's,
 * else an unknown type (an attachment). A name never makes a file one of the pipeline's
 * image types: those come from the bytes alone.
 */
export function fileType(buf: Buffer, hint?: string): FileType {
  const image = sniffImage(buf);
  if (image) return served(BY_MIME.get(IMAGE_MIME[image])!, image, false);
  const sniffed = sniffType(buf);
  const named = hint === undefined ? undefined : BY_MIME.get(hint);
  if (sniffed !== undefined) {
    const own = BY_MIME.get(sniffed)!;
    return served(named && named.family === own.family ? named : own, undefined, sniffed === TEXT);
  }
  if (named && named.family !== 'image') return served(named, undefined, false);
  return { mime: UNKNOWN_MIME, ext: 'bin', inline: false, image: undefined };
}
