// What this origin remembers it served (origin/served-urls.ts), saved when it stops
// gracefully (SIGTERM: a deploy, the all-in-one's Ctrl-C) and loaded once when it starts, so a
// later delete still purges, at a by-URL edge, the URLs served before the restart
// (docs/ORIGIN.md, "Served URLs across a restart"). Written only at the stop: the hit path
// pays nothing. A crash saves nothing, and the file a stop saved is removed once loaded, so
// an old memory is never loaded twice.
//
// File layout, version 1 — <cache-dir>/served-urls-<worker>, UTF-8, LF endings:
//
//   ugcfs-served-urls 1                                    magic and version
//   {"fid":..,"urls":[..],"legacy":[..]}                   one line per file, oldest first
//   crc <8 hex>                                            CRC32-C of every byte before this line
//
// "urls" are the URLs (path and query as sent) the file was served by, "legacy" the canonical
// legacy paths it was reached by. Golden bytes (test/origin/edge-purge-journal.test.ts), one
// file served by one URL and one legacy path:
//
//   ugcfs-served-urls 1
//   {"fid":"3,01637037d6","urls":["/old/a%20b.jpg"],"legacy":["/old/a b.jpg"]}
//   crc 4c21a412
//
// Written atomically (temp file, fsync, rename, directory fsync). A file that does not parse
// or whose CRC fails is ignored (logged): the memory only adds purges, so starting without
// it is what a crash does anyway.
import { readFile, rm } from 'node:fs/promises';
import { crc32c } from '@node-rs/crc32';
import { writeFileDurable } from '../src/base/durable-fs.ts';
import type { Logger } from '../src/base/log.ts';
import type { ServedUrls } from './served-urls.ts';

export const SERVED_SNAPSHOT_VERSION = 1;
const HEADER = `ugcfs-served-urls ${SERVED_SNAPSHOT_VERSION}\n`;

export interface ServedRecord {
  fid: string;
  urls: string[];
  legacy: string[];
}

const crcLine = (body: string) => `crc ${crc32c(Buffer.from(body, 'utf8')).toString(16).padStart(8, '0')}\n`;

export function encodeServedSnapshot(records: Iterable<ServedRecord>): string {
  let body = HEADER;
  for (const r of records) body += JSON.stringify({ fid: r.fid, urls: r.urls, legacy: r.legacy }) + '\n';
  return body + crcLine(body);
}

/** The records of a snapshot; throws (saying what is wrong) on anything but a whole version 1. */
export function decodeServedSnapshot(text: string): ServedRecord[] {
  if (!text.startsWith(HEADER)) throw new Error(text.startsWith('ugcfs-served-urls ') ? 'unknown version' : 'no header');
  const end = text.lastIndexOf('crc ');
  if (end < 0 || text.slice(end) !== crcLine(text.slice(0, end))) throw new Error('crc mismatch or cut short');
  const lines = text.slice(HEADER.length, end).split('\n').slice(0, -1);
  return lines.map((l) => {
    const o = JSON.parse(l) as Partial<ServedRecord>;
    const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');
    if (typeof o.fid !== 'string' || !strings(o.urls) || !strings(o.legacy)) throw new Error('a record of the wrong shape');
    return { fid: o.fid, urls: o.urls, legacy: o.legacy };
  });
}

export async function saveServed(path: string, served: ServedUrls): Promise<void> {
  await writeFileDurable(path, encodeServedSnapshot(served.records()));
}

/** Notes what the snapshots at `paths` hold into `served` (oldest first), then removes them; returns the URLs loaded. */
export async function loadServed(paths: readonly string[], served: ServedUrls, log: Logger): Promise<number> {
  const before = served.size;
  for (const path of paths) {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    try {
      for (const r of decodeServedSnapshot(text)) {
        for (const url of r.urls) served.note(r.fid, url);
        for (const p of r.legacy) if (r.urls[0] !== undefined) served.note(r.fid, r.urls[0], p);
      }
    } catch (err) {
      log.warn({ snapshot: path, err: (err as Error).message }, 'served URLs snapshot ignored');
    }
    await rm(path, { force: true });
  }
  return served.size - before;
}
