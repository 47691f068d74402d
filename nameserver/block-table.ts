// The name server's block records in memory, as typed columns indexed by block id
// (paged-column.ts): state, replica count, creation time, version and up to four replica
// servers in ~26 bytes a block, where an object per record cost some 250. The persisted form
// is still one JSON record per block (BlockRecord) in the metadata store; this is the
// in-memory index of it, materialising a BlockRecord only when asked for one.
import type { BlockRecord, BlockState } from './block-map.ts';
import { PagedColumn, PAGE_BITS, PAGE_SIZE } from './paged-column.ts';
import type { ServerIndex } from './server-index.ts';

const STATES: readonly BlockState[] = ['creating', 'writable', 'sealed', 'failed', 'abandoned'];
const STATE_CODE = new Map(STATES.map((s, i) => [s, i + 1]));
/** replica servers kept inline; a longer set (rare: a move in flight) lives in `wide` */
const INLINE = 4;

export class BlockTable {
  /** 0: no record; else 1 + index in STATES */
  private readonly state = new PagedColumn(Uint8Array);
  private readonly replication = new PagedColumn(Uint8Array);
  private readonly createdAt = new PagedColumn(Float64Array);
  private readonly version = new PagedColumn(Uint32Array);
  /** server number + 1 of replica i (0: none) */
  private readonly replica = Array.from({ length: INLINE }, () => new PagedColumn(Uint16Array));
  private readonly wide = new Map<number, number[]>();
  private records = 0;

  constructor(private readonly servers: ServerIndex) {}

  get size(): number {
    return this.records;
  }

  has(id: number): boolean {
    return this.state.get(id) !== 0;
  }

  stateOf(id: number): BlockState | undefined {
    const s = this.state.get(id);
    return s === 0 ? undefined : STATES[s - 1];
  }

  replicationOf(id: number): number {
    return this.replication.get(id);
  }

  createdAtOf(id: number): number {
    return this.createdAt.get(id);
  }

  versionOf(id: number): number {
    return this.version.get(id);
  }

  /** How many servers the replica set names. */
  replicaCount(id: number): number {
    const w = this.wide.size > 0 ? this.wide.get(id) : undefined;
    if (w) return w.length;
    let n = 0;
    while (n < INLINE && this.replica[n]!.get(id) !== 0) n++;
    return n;
  }

  /** Server number of replica `i` (i < replicaCount). */
  replicaAt(id: number, i: number): number {
    const w = this.wide.size > 0 ? this.wide.get(id) : undefined;
    return w ? w[i]! : this.replica[i]!.get(id) - 1;
  }

  /** Server numbers of the replica set, in order. */
  replicaNumbers(id: number): number[] {
    const w = this.wide.get(id);
    if (w) return w;
    const out: number[] = [];
    for (const col of this.replica) {
      const v = col.get(id);
      if (v === 0) break;
      out.push(v - 1);
    }
    return out;
  }

  get(id: number): BlockRecord | undefined {
    const s = this.state.get(id);
    if (s === 0) return undefined;
    const rec: BlockRecord = {
      id,
      replication: this.replication.get(id),
      state: STATES[s - 1]!,
      replicas: this.replicaNumbers(id).map((n) => this.servers.idOf(n)),
      createdAt: this.createdAt.get(id),
    };
    const v = this.version.get(id);
    if (v > 0) rec.version = v;
    return rec;
  }

  set(rec: BlockRecord): void {
    const id = rec.id;
    if (this.state.get(id) === 0) this.records++;
    this.state.set(id, STATE_CODE.get(rec.state) ?? STATE_CODE.get('failed')!);
    this.replication.set(id, rec.replication);
    this.createdAt.set(id, rec.createdAt);
    this.version.set(id, rec.version ?? 0);
    const nums = [...new Set(rec.replicas)].map((r) => this.servers.of(r));
    if (nums.length > INLINE) this.wide.set(id, nums);
    else this.wide.delete(id);
    for (let i = 0; i < INLINE; i++) this.replica[i]!.set(id, i < nums.length && nums.length <= INLINE ? nums[i]! + 1 : 0);
  }

  delete(id: number): void {
    if (this.state.get(id) === 0) return;
    this.records--;
    this.state.set(id, 0);
    this.wide.delete(id);
    for (const col of this.replica) col.set(id, 0);
  }

  /** Every block id with a record, ascending. */
  *ids(): Generator<number> {
    for (const p of this.state.pageNumbers()) {
      const base = p << PAGE_BITS;
      for (let i = 0; i < PAGE_SIZE; i++) if (this.state.get(base + i) !== 0) yield base + i;
    }
  }

  /** Ids with a record from `from` on, at most `limit` of them (a slice of a sweep). */
  slice(from: number, limit: number): number[] {
    const out: number[] = [];
    for (const p of this.state.pageNumbers()) {
      const base = p << PAGE_BITS;
      if (base + PAGE_SIZE <= from) continue;
      for (let i = Math.max(0, from - base); i < PAGE_SIZE && out.length < limit; i++) if (this.state.get(base + i) !== 0) out.push(base + i);
      if (out.length >= limit) break;
    }
    return out;
  }

  bytes(): number {
    return this.state.bytes() + this.replication.bytes() + this.createdAt.bytes() + this.version.bytes() + this.replica.reduce((s, c) => s + c.bytes(), 0);
  }
}
