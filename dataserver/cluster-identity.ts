// The cluster this data server belongs to, and the highest block id and file key it knows
// were handed out. Kept in <data>/cluster, so that a name server that lost its state can
// neither take this server for one of its own (its blocks would be "extra copies") nor hand
// out again an id below what the old state issued (docs/NAMESERVER.md, "Cluster identity").
//
// File layout, version 1 — <data>/cluster, ASCII, one "name value..." per line, LF endings,
// always these five lines in this order:
//
//   ugcfs-cluster 1              magic and version
//   cluster <id>                 the cluster id a name server handed out; "-" before that
//   block-ids <upTo> <state>     every block id below <upTo> (decimal) may have been issued;
//   keys <upTo> <state>          every file key below <upTo> (decimal, 56-bit) may have been;
//                                <state> is the name-server state whose lease it was
//                                (HeartbeatReply.state), "-" when derived from blocks held
//   crc <8 hex>                  CRC32-C of every byte before this line
//
// Golden bytes (test/cluster/cluster-identity-file.test.ts; each line ends in \n): cluster
// c-0123456789abcdef, block ids 33 and keys 20001, both from state s-fedcba9876543210:
//
//   ugcfs-cluster 1
//   cluster c-0123456789abcdef
//   block-ids 33 s-fedcba9876543210
//   keys 20001 s-fedcba9876543210
//   crc 962c8f49
//
// Written atomically: cluster.tmp is written and fsynced, renamed over cluster, and the
// directory fsynced, so a crash leaves the old file or the new one. Marks only go up. A
// file that does not parse, or whose crc fails, stops the data server at start (exit 2):
// guessing could join it to the wrong cluster; an operator who knows better edits or
// removes it (without it, the server joins the next name server that answers).
import { readFile, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { UgcfsError } from '../src/base/errors.ts';
import type { HighWaterMark } from '../src/wire/protocol.ts';

export const CLUSTER_FILE = 'cluster';
export const CLUSTER_FILE_VERSION = 1;
const CLUSTER_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const STATE_ID = /^[A-Za-z0-9_.-]{1,64}$/;

export interface Mark {
  upTo: bigint;
  /** '' when derived from blocks held */
  state: string;
}

export interface ClusterFileContent {
  cluster: string | undefined;
  blockIds: Mark;
  keys: Mark;
}

const NO_MARK: Mark = { upTo: 0n, state: '' };

export function isClusterId(s: unknown): s is string {
  return typeof s === 'string' && CLUSTER_ID.test(s);
}

export function encodeClusterFile(c: ClusterFileContent): Buffer {
  const mark = (m: Mark) => `${m.upTo} ${m.state === '' ? '-' : m.state}`;
  const body = `ugcfs-cluster ${CLUSTER_FILE_VERSION}\ncluster ${c.cluster ?? '-'}\nblock-ids ${mark(c.blockIds)}\nkeys ${mark(c.keys)}\n`;
  const crc = crc32c(Buffer.from(body, 'latin1')).toString(16).padStart(8, '0');
  return Buffer.from(`${body}crc ${crc}\n`, 'latin1');
}

/** Parses the file; throws (with what is wrong) on anything but a well-formed version 1. */
export function decodeClusterFile(buf: Buffer): ClusterFileContent {
  const text = buf.toString('latin1');
  const lines = text.split('\n');
  const fail = (why: string) => new Error(why);
  if (lines.length !== 6 || lines[5] !== '') throw fail('expected 5 lines ending in a newline');
  if (lines[0] !== `ugcfs-cluster ${CLUSTER_FILE_VERSION}`) throw fail(`first line must be "ugcfs-cluster ${CLUSTER_FILE_VERSION}" (unknown version?)`);
  const crcLine = /^crc ([0-9a-f]{8})$/.exec(lines[4]!);
  if (!crcLine) throw fail('no crc line');
  const body = text.slice(0, text.length - lines[4]!.length - 1);
  if (crc32c(Buffer.from(body, 'latin1')) !== parseInt(crcLine[1]!, 16)) throw fail('crc mismatch (the file is damaged)');
  const field = (line: string, name: string): string[] => {
    const parts = line.split(' ');
    if (parts[0] !== name) throw fail(`expected a "${name}" line, got ${JSON.stringify(line.slice(0, 40))}`);
    return parts.slice(1);
  };
  const [cluster, ...extra] = field(lines[1]!, 'cluster');
  if (extra.length > 0 || cluster === undefined || (cluster !== '-' && !CLUSTER_ID.test(cluster))) throw fail('bad cluster line');
  const mark = (line: string, name: string): Mark => {
    const v = field(line, name);
    if (v.length !== 2 || !/^\d{1,20}$/.test(v[0]!) || (v[1] !== '-' && !STATE_ID.test(v[1]!))) throw fail(`bad ${name} line`);
    return { upTo: BigInt(v[0]!), state: v[1] === '-' ? '' : v[1]! };
  };
  return { cluster: cluster === '-' ? undefined : cluster, blockIds: mark(lines[2]!, 'block-ids'), keys: mark(lines[3]!, 'keys') };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface IdentityUpdate {
  cluster?: string;
  blockIds?: Mark;
  keys?: Mark;
}

function leaseEnd(v: unknown): bigint | undefined {
  return typeof v === 'string' && /^\d{1,20}$/.test(v) ? BigInt(v) : undefined;
}

export class ClusterIdentity {
  private content: ClusterFileContent;
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    content: ClusterFileContent,
  ) {
    this.content = content;
  }

  /** Reads <dir>/cluster (absent: no cluster yet, no marks). A damaged file is bad usage (exit 2). */
  static async load(dir: string): Promise<ClusterIdentity> {
    const file = join(dir, CLUSTER_FILE);
    let buf: Buffer;
    try {
      buf = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new ClusterIdentity(dir, { cluster: undefined, blockIds: NO_MARK, keys: NO_MARK });
      throw err;
    }
    try {
      return new ClusterIdentity(dir, decodeClusterFile(buf));
    } catch (err) {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${file} is not a valid cluster file (${(err as Error).message}); it names the cluster this data server belongs to: restore it, or remove it to let the server join the next name server that answers`);
    }
  }

  /** The stored cluster id, undefined before a name server first handed one out. */
  get cluster(): string | undefined {
    return this.content.cluster;
  }

  get blockIds(): Mark {
    return this.content.blockIds;
  }

  get keys(): Mark {
    return this.content.keys;
  }

  /** The marks as a heartbeat carries them. */
  highWater(): { blockIds: HighWaterMark; keys: HighWaterMark } {
    const wire = (m: Mark): HighWaterMark => ({ upTo: m.upTo.toString(), state: m.state });
    return { blockIds: wire(this.content.blockIds), keys: wire(this.content.keys) };
  }

  /**
   * Why a name server's word is refused (another cluster's, a malformed or missing cluster
   * id), or undefined when it is of this cluster; checks only, stores nothing (a standby's
   * heartbeat reply is checked so, and teaches nothing).
   */
  refusal(from: string, msg: { cluster?: unknown }): string | undefined {
    const mine = this.cluster;
    const theirs = msg.cluster;
    if (theirs !== undefined && !isClusterId(theirs)) return `name server ${from} sent a malformed cluster id: refusing its commands; blocks kept`;
    if (theirs !== undefined && mine !== undefined && theirs !== mine) return `name server ${from} belongs to cluster ${theirs}, this data server to ${mine}: refusing its commands; blocks kept`;
    if (theirs === undefined && mine !== undefined) return `name server ${from} answered without a cluster id, this data server belongs to ${mine}: refusing its commands; blocks kept`;
    return undefined;
  }

  /**
   * Checks a name server's word (a heartbeat reply, a block creation) against this server's
   * cluster and stores what it teaches (a first cluster id, higher marks; synced). Returns
   * why it is refused, or undefined when the name server is of this cluster. `from` names
   * the name server in the reason.
   */
  async admit(from: string, msg: { cluster?: unknown; state?: unknown; leasedUpTo?: { blockIds?: unknown; keys?: unknown } }): Promise<string | undefined> {
    const refused = this.refusal(from, msg);
    if (refused !== undefined) return refused;
    const mine = this.cluster;
    const theirs = msg.cluster;
    const u: IdentityUpdate = {};
    if (isClusterId(theirs) && mine === undefined) u.cluster = theirs;
    const state = typeof msg.state === 'string' ? msg.state : '';
    const blockIds = leaseEnd(msg.leasedUpTo?.blockIds);
    const keys = leaseEnd(msg.leasedUpTo?.keys);
    if (blockIds !== undefined) u.blockIds = { upTo: blockIds, state };
    if (keys !== undefined) u.keys = { upTo: keys, state };
    await this.update(u);
    return undefined;
  }

  /**
   * Stores a cluster id (only when none is stored: a stored id never changes here) and
   * raises the marks; the file is rewritten, synced, before this resolves, and only when
   * something changed. Updates are applied one at a time.
   */
  update(u: IdentityUpdate): Promise<void> {
    const run = this.chain.then(async () => {
      const cur = this.content;
      const next: ClusterFileContent = {
        cluster: cur.cluster ?? (u.cluster !== undefined && isClusterId(u.cluster) ? u.cluster : undefined),
        blockIds: u.blockIds && u.blockIds.upTo > cur.blockIds.upTo ? u.blockIds : cur.blockIds,
        keys: u.keys && u.keys.upTo > cur.keys.upTo ? u.keys : cur.keys,
      };
      if (next.cluster === cur.cluster && next.blockIds === cur.blockIds && next.keys === cur.keys) return;
      await this.write(next);
      this.content = next;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async write(c: ClusterFileContent): Promise<void> {
    const file = join(this.dir, CLUSTER_FILE);
    const tmp = file + '.tmp';
    const fh = await open(tmp, 'w', 0o644);
    try {
      await fh.writeFile(encodeClusterFile(c));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, file);
    await syncDir(this.dir);
  }
}
