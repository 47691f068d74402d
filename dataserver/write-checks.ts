// The checks every data-server write route shares (a PUT of one needle, a needle batch, a
// DELETE): headers, replica lists, media type and owner, block ids. Each refusal is a 400
// with a stable code, raised before anything is written.
import type { IncomingHttpHeaders } from 'node:http';
import { credentialOf } from '../src/base/secret.ts';
import type { RoleRules } from '../src/http/http-server.ts';
import type { AccessLog } from '../src/http/access-log.ts';
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import { HEADERS, isMetaText, type WriteResult } from '../src/wire/protocol.ts';
import type { BlockStore, PutResult } from './block-store.ts';

export interface NeedleWriteContext {
  store: BlockStore;
  /** the cluster secret, what this server sends to its peers */
  secret: string;
  /** who may call: file routes take the origins' credential too; a repair copy or delete only the cluster secret */
  rules: RoleRules;
  blockSize: number;
  metrics: Metrics;
  log: Logger;
  /** the server's --access-log writer (ServerBase.access); without it, writes here log no access line */
  access?: AccessLog;
  /** --write-buffer-pool-bytes: request bodies of the hot write routes are read into pooled buffers (0: off) */
  bodyPoolBytes?: number;
}

const MIME = /^[A-Za-z0-9!#$&^_.+-]{1,127}\/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;[\x20-\x7e]*)?$/;

export function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function bad(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_REQUEST', message);
}

export function parseReplicas(headers: IncomingHttpHeaders): string[] {
  const raw = header(headers, HEADERS.replicas);
  if (raw === undefined || raw.trim() === '') return [];
  return raw.split(',').map((s) => {
    const u = s.trim();
    try {
      const parsed = new URL(u);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw bad(`${HEADERS.replicas} holds something that is not an http(s) URL`);
    }
    return u.replace(/\/+$/, '');
  });
}

/** verify --repair's header: the write is for this copy alone, so it cannot name peers. */
export function isRepair(headers: IncomingHttpHeaders, replicas: string[], rules: RoleRules): boolean {
  const v = header(headers, HEADERS.repair);
  if (v === undefined) return false;
  // Repair writes onto read-only blocks and deletes one copy: the name server's, not an origin's.
  rules.internal.check(credentialOf(headers));
  if (v !== '1') throw bad(`${HEADERS.repair} must be 1`);
  if (replicas.length > 0) throw bad(`a ${HEADERS.repair} write is never forwarded: drop ${HEADERS.replicas}`);
  return true;
}

/** A record's media type and owner as every write route accepts them; `from` names where they came from. */
export function checkMeta(mime: string, owner: string, from: { mime: string; owner: string }): void {
  if (mime.length > 255 || !MIME.test(mime)) throw bad(`${from.mime} is not a media type`);
  if (!isMetaText(owner)) throw bad(`${from.owner} must be at most 255 printable ASCII characters`);
}

export function parseBlockId(text: string): number {
  if (!/^\d{1,10}$/.test(text) || Number(text) > 0xffffffff) throw bad(`block id must be a decimal number below 2^32, got ${JSON.stringify(text.slice(0, 40))}`);
  return Number(text);
}

/** A stored write's answer, the same whichever route took it. */
export function writeResult(fid: string, r: PutResult): WriteResult {
  return r.existed ? { fid, size: r.size, crc: r.crc, existed: true } : { fid, size: r.size, crc: r.crc };
}
