// The ledger of what a cluster acknowledged under a fault schedule (the crash matrix, the
// power-cut matrix): writes, reads and deletes through the cluster client while faults
// happen, then the checks that nothing acknowledged was lost or brought back.
import { expect } from 'vitest';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { isUgcfsError } from '../../src/base/errors.ts';
import { DS_ROUTES, NS_ROUTES, type Operation } from '../../src/wire/protocol.ts';
import type { Cluster } from '../helpers/cluster.ts';
import { payload, sha, sleep } from './fault-kit.ts';

export class Ledger {
  /** fid -> sha256 of the acknowledged bytes */
  readonly live = new Map<string, string>();
  /** deletes that were acknowledged */
  readonly deleted = new Set<string>();
  /** deletes sent without an answer: either outcome is right, other bytes never */
  readonly uncertain = new Map<string, string>();
  /** how each acknowledged delete was made and when, for the diagnosis of a failing run */
  readonly deletedAt = new Map<string, string>();
  /** what no run may see: untyped errors, wrong bytes */
  readonly errors: string[] = [];
  readonly counts = { writes: 0, writeFailures: 0, reads: 0, readFailures: 0, deletes: 0 };
  /** write failures by error code */
  readonly failures = new Map<string, number>();

  constructor(
    private readonly cluster: Pick<Cluster, 'client' | 'dataservers' | 'dsIds' | 'secret' | 'cli'>,
    private readonly rnd: () => number,
  ) {}

  /** A random live fid, or undefined when there is none. */
  pickLive(): string | undefined {
    const fids = [...this.live.keys()];
    return fids.length === 0 ? undefined : fids[Math.floor(this.rnd() * fids.length)];
  }

  /** One write of random bytes through the cluster client, recorded when acknowledged. */
  async write(maxBytes: number): Promise<string | undefined> {
    const data = payload(this.rnd, 1000 + Math.floor(this.rnd() * maxBytes));
    try {
      const w = await this.cluster.client.write(data, { mime: 'application/octet-stream' });
      this.live.set(w.fid, sha(data));
      this.counts.writes++;
      return w.fid;
    } catch (err) {
      if (!isUgcfsError(err)) this.errors.push(`write: untyped ${String(err)}`);
      else this.failures.set(err.code, (this.failures.get(err.code) ?? 0) + 1);
      this.counts.writeFailures++;
      await sleep(50);
    }
  }

  /** One read of a live file: it may fail while roles are down, never return other bytes. */
  async read(onNotFound?: (fid: string) => Promise<void>): Promise<string | undefined> {
    const fid = this.pickLive();
    if (fid === undefined) return undefined;
    try {
      const got = await this.cluster.client.read(fid);
      this.counts.reads++;
      if (this.live.has(fid) && sha(got.data) !== this.live.get(fid)) this.errors.push(`read ${fid}: wrong bytes`);
    } catch (err) {
      this.counts.readFailures++;
      if (!isUgcfsError(err)) this.errors.push(`read: untyped ${String(err)}`);
      else if (err.code === 'UGCFS_ERR_NOT_FOUND' && this.live.has(fid)) await onNotFound?.(fid);
    }
    return fid;
  }

  /**
   * Takes a live file out of the ledger to delete it (with at least `keep` left), then
   * records how `del` ended: acknowledged (it names how it deleted), or unknown (false, or
   * a throw).
   */
  async delete(del: (fid: string) => Promise<string | false>, keep = 10): Promise<void> {
    if (this.live.size < keep) return;
    const fid = this.pickLive()!;
    const want = this.live.get(fid)!;
    this.live.delete(fid);
    const how = await del(fid).catch(() => false as const);
    if (how !== false) {
      this.deleted.add(fid);
      this.deletedAt.set(fid, `${how}@${Date.now()}`);
      this.counts.deletes++;
    } else this.uncertain.set(fid, want);
  }

  /** Through the cluster client; the acknowledgement is its return. */
  clientDelete = async (fid: string): Promise<string> => {
    await this.cluster.client.delete(fid);
    return 'client';
  };

  /** Acknowledged files that do not read back byte-exact, with why. */
  async lost(): Promise<string[]> {
    const out: string[] = [];
    for (const [fid, want] of this.live) {
      const got = await this.cluster.client.read(fid).catch((e: Error) => e);
      if (got instanceof Error || sha(got.data) !== want) out.push(`${fid}: ${got instanceof Error ? got.message : 'wrong bytes'}`);
    }
    return out;
  }

  /** Acknowledged deletes some data server still answers for, as `fid (how) on ds:status`. */
  async resurrected(): Promise<string[]> {
    const out: string[] = [];
    for (const fid of this.deleted) {
      const holders: string[] = [];
      for (const [i, ds] of this.cluster.dataservers.entries()) {
        const r = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), { method: 'HEAD', secret: this.cluster.secret });
        if (r.status !== 404) holders.push(`${this.cluster.dsIds[i]}:${r.status}`);
      }
      if (holders.length > 0) out.push(`${fid} (deleted by ${this.deletedAt.get(fid)}) held by ${holders.join(',')}`);
    }
    return out;
  }

  /** A delete whose answer was lost either happened or did not: never other bytes. */
  async expectUncertainSettled(): Promise<void> {
    for (const [fid, want] of this.uncertain) {
      const got = await this.cluster.client.read(fid).catch((err: unknown) => err);
      if (Buffer.isBuffer((got as { data?: Buffer }).data)) expect(sha((got as { data: Buffer }).data)).toBe(want);
      else expect(got).toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
    }
  }

  /**
   * `ugcfs verify --repair` settles copies that differ by a write or delete cut half-way
   * (never acknowledged); then `ugcfs verify` must be clean, and the repair must have kept
   * every acknowledged byte and brought back no acknowledged delete. Returns verify's line.
   */
  async expectVerifyCleanAfterRepair(): Promise<string> {
    // verify reads every copy of every block; on a busy 2-core machine that can take minutes
    const VERIFY = { timeoutMs: 180_000 };
    const repaired = await this.cluster.cli(['verify', '--repair'], VERIFY);
    expect(repaired.code, `${repaired.stdout}\n${repaired.stderr}`).toBe(0);
    const clean = await this.cluster.cli(['verify'], VERIFY);
    expect(clean.code, `verify after verify --repair:\n${clean.stdout}\n${clean.stderr}`).toBe(0);
    for (const [fid, want] of this.live) expect(sha((await this.cluster.client.read(fid)).data), `acknowledged ${fid} after repair`).toBe(want);
    expect(await this.resurrected(), 'deleted files after repair').toEqual([]);
    return clean.stdout.trim().split('\n')[0] ?? '';
  }
}

/**
 * Starts a cluster operation as an operator would while faults go on: the name server may be
 * down, so it tries for a while. True when started; false when one of that kind already runs.
 */
export async function startOperation(cluster: Cluster, body: Record<string, unknown>): Promise<boolean> {
  for (let attempt = 0; attempt < 40; attempt++) {
    try {
      await callJson(cluster.nameserver.url + NS_ROUTES.ops, { method: 'POST', body, secret: cluster.secret, timeoutMs: 5000 });
      return true;
    } catch (err) {
      if (!isUgcfsError(err)) throw err;
      if (err.code === 'UGCFS_ERR_CONFLICT') return false;
      await sleep(250);
    }
  }
  return false;
}

/** The operations still planned or running. */
export async function operationsRunning(cluster: Cluster): Promise<Operation[]> {
  const ops = await callJson<Operation[]>(cluster.nameserver.url + NS_ROUTES.ops, { secret: cluster.secret, timeoutMs: 3000 });
  return ops.filter((o) => o.state === 'running' || o.state === 'planned');
}
