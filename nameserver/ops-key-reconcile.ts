// Reconciling copies of a block that disagree without any CRC damage: a delete or a write
// that crashed half-way left a key live on some copies and deleted or absent on others.
// The rules (docs/OPERATIONS.md, "verify"): deletes win — a key tombstoned on any copy is
// deleted on every copy; a live key absent (never deleted) elsewhere is copied to the
// copies that lack it, since it may have been acknowledged. Anything else (the same key
// with different bytes, a record a copy cannot read) is a conflict left to the digest vote.
import { encodeFid } from '../src/wire/file-id.ts';
import type { BlockKeyState } from '../src/wire/protocol.ts';
import type { NameserverContext } from './context.ts';
import { dataserversOf } from './dataservers.ts';
import type { DataserverEntry } from './registry.ts';

/** What one copy needs to agree with the others. */
export interface CopyFix {
  ds: DataserverEntry;
  /** live here, deleted on another copy */
  deletes: BlockKeyState[];
  /** live on `from`, neither live nor deleted here */
  copies: Array<{ state: BlockKeyState; from: DataserverEntry }>;
}

export interface KeyPlan {
  fixes: CopyFix[];
  /** keys the rules cannot settle, with why */
  conflicts: string[];
}

const LISTED_KEYS = 10;

export function fetchKeys(ctx: NameserverContext, ds: DataserverEntry, block: number): Promise<BlockKeyState[]> {
  return dataserversOf(ctx).blockKeys(ds, block);
}

export function planKeyFixes(copies: Array<{ ds: DataserverEntry; keys: BlockKeyState[] }>): KeyPlan {
  const byKey = new Map<string, Array<BlockKeyState | undefined>>();
  copies.forEach((c, i) => {
    for (const k of c.keys) {
      const row = byKey.get(k.key) ?? new Array<BlockKeyState | undefined>(copies.length).fill(undefined);
      row[i] = k;
      byKey.set(k.key, row);
    }
  });
  const fixes: CopyFix[] = copies.map((c) => ({ ds: c.ds, deletes: [], copies: [] }));
  const conflicts: string[] = [];
  for (const [key, row] of byKey) {
    const live = row.map((s, i) => ({ s, i })).filter((x) => x.s && !x.s.deleted) as Array<{ s: BlockKeyState; i: number }>;
    const deleted = row.filter((s) => s?.deleted);
    if (live.length === 0) continue; // deleted or absent everywhere: readers agree already
    const first = live[0]!.s;
    if (live.some((x) => x.s.size < 0)) {
      conflicts.push(`key ${key}: a copy cannot read its record`);
      continue;
    }
    if (live.some((x) => x.s.cookie !== first.cookie || x.s.crc !== first.crc || x.s.size !== first.size)) {
      conflicts.push(`key ${key}: copies hold different bytes`);
      continue;
    }
    if (deleted.some((s) => s!.cookie !== first.cookie)) {
      conflicts.push(`key ${key}: tombstone and record have different cookies`);
      continue;
    }
    if (deleted.length > 0) {
      for (const x of live) fixes[x.i]!.deletes.push(x.s);
    } else {
      row.forEach((s, i) => {
        if (!s) fixes[i]!.copies.push({ state: first, from: copies[live[0]!.i]!.ds });
      });
    }
  }
  return { fixes: fixes.filter((f) => f.deletes.length > 0 || f.copies.length > 0), conflicts };
}

/** One line naming the keys a copy differs in, for the verify report. */
export function describeFix(f: CopyFix): string {
  const parts: string[] = [];
  const list = (keys: string[]) => keys.slice(0, LISTED_KEYS).join(', ') + (keys.length > LISTED_KEYS ? ` and ${keys.length - LISTED_KEYS} more` : '');
  if (f.deletes.length > 0) parts.push(`live here but deleted on another copy: key ${list(f.deletes.map((k) => k.key))}`);
  if (f.copies.length > 0) parts.push(`missing here, live on ${f.copies[0]!.from.id}: key ${list(f.copies.map((c) => c.state.key))}`);
  return `keys-differ (${parts.join('; ')})`;
}

/** Applies one copy's fixes; throws on the first one that fails (the re-scrub will tell). */
export async function applyFix(ctx: NameserverContext, block: number, f: CopyFix): Promise<void> {
  const dataservers = dataserversOf(ctx);
  const fidOf = (k: BlockKeyState) => encodeFid({ block, key: BigInt(k.key), cookie: k.cookie });
  // Gone meanwhile (a client delete got there first, 'missing') is the outcome wanted.
  for (const k of f.deletes) await dataservers.deleteNeedle(f.ds, fidOf(k), { repair: true });
  for (const { state, from } of f.copies) {
    const fid = fidOf(state);
    const src = await dataservers.getNeedle(from, fid, { repair: true });
    await dataservers.putNeedle(f.ds, fid, src.data, { repair: true, mime: src.head.mime, owner: src.head.owner, uploadTime: src.head.uploadTime || Date.now(), crc: state.crc });
  }
  ctx.log.info({ block, ds: f.ds.id, deleted: f.deletes.length, copied: f.copies.length }, 'copy reconciled with its replicas');
}
