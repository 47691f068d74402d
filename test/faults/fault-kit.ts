// Small shared pieces of the fault tests: a seeded random source (so a failing run can be
// replayed from the seed it logged), a hang detector, and the ledger of what the cluster
// acknowledged, checked byte for byte at the end.
import { createHash } from 'node:crypto';
import { isUgcfsError, type ErrorCode } from '../../src/base/errors.ts';

/** mulberry32: small, fast, and the same sequence for the same seed on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed from UGCFS_FAULT_SEED, else a fresh one; logged by the caller so a run can be replayed. */
export function faultSeed(): number {
  const given = Number(process.env.UGCFS_FAULT_SEED);
  return Number.isInteger(given) && given > 0 ? given : Math.floor(Math.random() * 2 ** 31) + 1;
}

/** Random bytes from the seeded source, so payloads are reproducible too. */
export function payload(rnd: () => number, size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i += 4) b.writeUInt32LE(Math.floor(rnd() * 2 ** 32), Math.min(i, size - 4));
  return b;
}

export const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export class HangError extends Error {}

/**
 * Resolves or rejects like `p`, but fails with HangError if `p` has not settled within
 * `ms`: a request that outlives every timeout it was given is a hang, whatever it returns.
 */
export function settleWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new HangError(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; code: ErrorCode | 'HANG' | 'UNTYPED'; message: string };

/** Runs `fn` under a hang bound and classifies its failure: typed ugcfs errors are clean, anything else is not. */
export async function outcome<T>(fn: () => Promise<T>, boundMs: number, what: string): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await settleWithin(fn(), boundMs, what) };
  } catch (err) {
    if (err instanceof HangError) return { ok: false, code: 'HANG', message: err.message };
    if (isUgcfsError(err)) return { ok: false, code: err.code, message: err.message };
    return { ok: false, code: 'UNTYPED', message: String((err as Error)?.stack ?? err) };
  }
}

export async function pool<T>(items: T[], concurrency: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
