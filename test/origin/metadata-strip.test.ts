import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { stripJpeg, stripPng, stripWebp, exifOrientation } from '../../origin/metadata-strip.ts';
import { sniffImage } from '../../origin/media-type.ts';
import { corpus } from './origin-env.ts';

describe('lossless metadata stripping', () => {
  it('drops GPS EXIF from a camera JPEG and keeps the pixels', async () => {
    const src = corpus('exif/geodegrees_as_string.jpg');
    expect((await sharp(src).metadata()).exif).toBeDefined();
    const out = stripJpeg(src)!;
    expect(out.data.includes(Buffer.from('Exif\0\0', 'latin1'))).toBe(false);
    expect(out.data.includes(Buffer.from('GPS', 'latin1'))).toBe(false);
    const meta = await sharp(out.data).metadata();
    expect(meta.exif).toBeUndefined();
    expect(meta.xmp).toBeUndefined();
    const [a, b] = await Promise.all([sharp(src).raw().toBuffer(), sharp(out.data).raw().toBuffer()]);
    expect(b.equals(a)).toBe(true);
  });

  it('keeps the orientation alone in a minimal EXIF block', async () => {
    for (let i = 1; i <= 8; i++) {
      const src = corpus(`exif/f${i}-exif.jpg`);
      const out = stripJpeg(src)!;
      expect(out.orientation).toBe(i);
      const meta = await sharp(out.data).metadata();
      expect(meta.orientation ?? 1).toBe(i);
      expect(meta.exif?.length ?? 0).toBeLessThan(64);
      expect(meta.autoOrient).toEqual({ width: 40, height: 80 });
    }
  });

  it('is idempotent, so stored originals come back byte-exact', () => {
    for (const f of ['exif/f6-exif.jpg', 'exif/geodegrees_as_string.jpg', 'photos/Aqua.jpg']) {
      const once = stripJpeg(corpus(f))!.data;
      expect(stripJpeg(once)!.data.equals(once), f).toBe(true);
    }
    const png = stripPng(corpus('photos/Spring.png'))!.data;
    expect(stripPng(png)!.data.equals(png)).toBe(true);
    const webp = stripWebp(corpus('photos/wood-d.webp'))!.data;
    expect(stripWebp(webp)!.data.equals(webp)).toBe(true);
  });

  it('survives the malformed (looping) EXIF block without hanging', async () => {
    const out = stripJpeg(corpus('exif/infinite_loop_exif.jpg'))!;
    expect(out.data.includes(Buffer.from('Exif\0\0', 'latin1'))).toBe(out.orientation !== 1);
    expect((await sharp(out.data).raw().toBuffer()).length).toBeGreaterThan(0);
    // A self-referencing IFD count cannot make the reader loop.
    const tiff = Buffer.from('MM\0*\0\0\0\x08\xff\xff', 'latin1');
    expect(exifOrientation(tiff)).toBe(1);
  });

  it('drops text chunks and trailers from PNG, and EXIF/XMP from WebP', async () => {
    const base = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#f00' } }).png().toBuffer();
    const iend = base.length - 12;
    const text = Buffer.from('tEXtComment\0secret place', 'latin1');
    const chunk = Buffer.concat([Buffer.alloc(4), text, Buffer.alloc(4)]);
    chunk.writeUInt32BE(text.length - 4, 0);
    const withText = Buffer.concat([base.subarray(0, iend), chunk, base.subarray(iend), Buffer.from('<script>trailer</script>')]);
    const out = stripPng(withText)!.data;
    expect(out.equals(base)).toBe(true);

    const webp = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#0f0' } }).webp().withExif({ IFD0: { Copyright: 'someone', Orientation: '1' } }).toBuffer();
    expect((await sharp(webp).metadata()).exif).toBeDefined();
    const cleaned = stripWebp(webp)!;
    const meta = await sharp(cleaned.data).metadata();
    expect(meta.exif).toBeUndefined();
    expect(sniffImage(cleaned.data)).toBe('webp');
  });

  it('sniffs types from bytes only', () => {
    expect(sniffImage(corpus('photos/Aqua.jpg'))).toBe('jpeg');
    expect(sniffImage(corpus('photos/Spring.png'))).toBe('png');
    expect(sniffImage(corpus('photos/wood-d.webp'))).toBe('webp');
    expect(sniffImage(Buffer.from('GIF89a......'))).toBe('gif');
    expect(sniffImage(Buffer.from('<html><script>alert(1)</script></html>'))).toBeUndefined();
    expect(sniffImage(Buffer.from('\0\0\0\x1cftypavif\0\0\0\0avifmif1', 'latin1'))).toBe('avif');
    expect(sniffImage(Buffer.from('\0\0\0\x1cftypisom\0\0\0\0isommp41', 'latin1'))).toBeUndefined();
  });
});
