// Positioned writes that finish whatever the kernel's per-call limits (short writes,
// IOV_MAX): the appender, compaction and pulls share them.
import type { FileHandle } from 'node:fs/promises';

export async function writeAll(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done);
    if (bytesWritten <= 0) throw Object.assign(new Error('short write'), { code: 'EIO' });
    done += bytesWritten;
  }
}

const IOV_MAX = 1024;

/** Writes the buffers back to back at `position`, whatever the kernel's per-call limits. */
export async function writevAll(fh: FileHandle, bufs: Buffer[], position: number): Promise<void> {
  let i = 0;
  while (i < bufs.length) {
    const chunk = bufs.slice(i, i + IOV_MAX);
    const want = chunk.reduce((n, b) => n + b.length, 0);
    const { bytesWritten } = await fh.writev(chunk, position);
    if (bytesWritten < want) {
      // A short vectored write: finish this chunk the plain way.
      const rest = Buffer.concat(chunk).subarray(bytesWritten);
      await writeAll(fh, rest, position + bytesWritten);
    }
    position += want;
    i += chunk.length;
  }
}
