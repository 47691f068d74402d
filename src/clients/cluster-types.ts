// The shapes the cluster client (src/clients/cluster-client.ts) takes and returns, shared by its
// writer, reader, deleter and delete-feed modules.
import type { Dispatcher } from 'undici';
import { UgcfsError } from '../base/errors.ts';
import type { DsRef } from '../wire/protocol.ts';
import type { NeedleHead } from './dataserver-wire.ts';

export interface ClusterClientOptions {
  /** the name servers' base URLs: every member of a high-availability group (a string may be a comma-separated list) */
  nameserver: string | readonly string[];
  /** the cluster secret (internal APIs) */
  secret?: string;
  /** sent as Bearer to admin views (status) when no secret is given */
  adminToken?: string;
  /** per-request timeout, ms (default 10 s: NS_TIMEOUT_MS, DS_TIMEOUTS.needle) */
  timeoutMs?: number;
  /** how long a call only the leader may answer (assign, reports) keeps looking for one, ms (default 10 s: NS_FAILOVER_MS) */
  nameserverFailoverMs?: number;
  /** the agent every call goes through (http-client.ts agentFor: --tls-ca); default the shared one */
  dispatcher?: Dispatcher;
  /** how long a block location is trusted before it is fetched again, ms (default 10 s; a sealed block's: sealedLocationTtlMs) */
  locationTtlMs?: number;
  /** how long a sealed block's location is trusted, ms (default 1 h); a move learnt from the delete feed (watchDeletes) or a failed read drops it sooner */
  sealedLocationTtlMs?: number;
  /** blocks whose locations are cached (default 10,000) */
  locationCacheSize?: number;
  /** assign + write attempts before a write fails (default 4) */
  writeAttempts?: number;
  /** replica count to ask for; default: the name server's --replicas */
  replicas?: number;
  /** at most this many fids per assign round trip, queued for the next writes (default 100, the most an assign hands out; 1 = one assign per write) */
  assignBatch?: number;
  /**
   * at most this many concurrent writes to one block sent to its primary as one batch request
   * (default 32; 1 = one PUT per write). A write alone in its turn is always a plain PUT.
   */
  writeBatch?: number;
}

export interface WriteMeta {
  mime?: string;
  owner?: string;
  /** replica count for this file; default: the client's, else the name server's */
  replicas?: number;
  /**
   * Hears each attempt's fid before any byte is sent (a retry on another block calls it
   * again; the last call names the stored file). Lets a caller journal the fid first: data
   * servers finish a write even when the client dies waiting for the answer.
   */
  onAssigned?: (fid: string) => void;
}

export interface WrittenFile {
  fid: string;
  size: number;
  /** CRC32-C of the data */
  crc: number;
  /** where it was written; [0] was the primary */
  replicas: DsRef[];
}

/** A stored file's metadata (the data server's needle head). */
export type FileHead = NeedleHead;

export interface ReadFile extends Omit<FileHead, 'size' | 'fid'> {
  data: Buffer;
}

export interface FileStat {
  fid: string;
  block: number;
  size: number;
  mime: string;
  /** ids of live data servers holding it */
  replicas: string[];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function asUgcfs(err: unknown): UgcfsError {
  if (err instanceof UgcfsError) return err;
  return new UgcfsError('UGCFS_ERR_INTERNAL', (err as Error)?.message ?? String(err), { cause: err });
}
