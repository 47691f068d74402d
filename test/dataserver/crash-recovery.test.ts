// A writer appending through the storage engine is SIGKILLed at random points, 20 times.
// After every kill the store reopens, and: every acknowledged put reads back byte-exact,
// every acknowledged delete stays deleted, nothing else is half there (scrub finds no bad
// record and every indexed record is whole and correct).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BlockStore } from '../../dataserver/block-store.ts';
import { isUgcfsError } from '../../src/base/errors.ts';
import { ROOT, tempDir } from '../helpers/proc.ts';
import { recordData } from './record-data.ts';

const KILLS = 20;
const tmp = tempDir('ugcfs-crash-');
afterAll(() => tmp.cleanup());

interface Acks {
  puts: Map<bigint, number>;
  /** deletes issued; those in `deletes` were acknowledged, the others may or may not have landed */
  deleting: Set<bigint>;
  deletes: Set<bigint>;
}

function runAndKill(dir: string, run: number, acks: Acks, killAfterAcks: number, extraMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin/run-ts.mjs'), join(ROOT, 'test/dataserver/append-loop.ts'), dir, String(run), String(256 * 1024)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let seen = 0;
    let buf = '';
    let stderr = '';
    let killing = false;
    const kill = () => {
      if (killing) return;
      killing = true;
      setTimeout(() => child.kill('SIGKILL'), extraMs);
    };
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer made no progress: ${stderr}`));
    }, 60_000);
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const [kind, block, key] = buf.slice(0, i).split(' ');
        buf = buf.slice(i + 1);
        if (kind === 'P') {
          acks.puts.set(BigInt(key!), Number(block));
          if (++seen >= killAfterAcks) kill();
        } else if (kind === 'd') acks.deleting.add(BigInt(key!));
        else if (kind === 'D') acks.deletes.add(BigInt(key!));
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`writer exited on its own (${code}): ${stderr}`));
    });
  });
}

describe('crash recovery', () => {
  it(`loses no acknowledged write across ${KILLS} SIGKILLs`, async () => {
    const dir = join(tmp.dir, 'store');
    const acks: Acks = { puts: new Map(), deleting: new Set(), deletes: new Set() };
    const repaired = { records: 0, cutBytes: 0 };
    for (let run = 1; run <= KILLS; run++) {
      const before = acks.puts.size;
      await runAndKill(dir, run, acks, 5 + Math.floor(Math.random() * 150), Math.floor(Math.random() * 15));
      expect(acks.puts.size).toBeGreaterThan(before);

      const store = await BlockStore.open({ dir, blockSize: 256 * 1024, fsync: true });
      repaired.records += store.recovered.records;
      repaired.cutBytes += store.recovered.cutBytes;
      try {
        for (const [key, block] of acks.puts) {
          const cookie = Number(key & 0xffffffffn);
          if (acks.deletes.has(key)) {
            await expect(store.read(block, key, cookie)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
            continue;
          }
          const n = await store.read(block, key, cookie).catch((err: unknown) => {
            // A delete that was issued but not acknowledged may have landed.
            if (acks.deleting.has(key) && isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')) return undefined;
            throw err;
          });
          if (n) expect(Buffer.compare(n.data, recordData(key)), `key ${key}`).toBe(0);
        }
        // Nothing half-visible: every record in every block is whole, and whatever the index
        // serves (acknowledged or not) is the complete, correct file.
        for (const r of store.reports()) {
          const s = await store.scrub(r.id);
          expect(s.bad, `block ${r.id}`).toEqual([]);
          for await (const { key, entry } of store.ctx.index.entries(r.id)) {
            const n = await store.read(r.id, key, entry.cookie);
            expect(Buffer.compare(n.data, recordData(key))).toBe(0);
            expect(acks.deletes.has(key)).toBe(false);
          }
        }
      } finally {
        await store.close();
      }
    }
    expect(acks.puts.size).toBeGreaterThan(KILLS * 5);
    console.log(`crash test: ${acks.puts.size} acknowledged puts, ${acks.deletes.size} deletes; reopen re-indexed ${repaired.records} records and cut ${repaired.cutBytes} torn bytes`);
  });

  it('after all that, a key never written reads as NOT_FOUND, not as damage', async () => {
    const store = await BlockStore.open({ dir: join(tmp.dir, 'store'), blockSize: 256 * 1024 });
    try {
      const err = await store.read(1, 999_999_999n, 1).catch((e: unknown) => e);
      expect(isUgcfsError(err, 'UGCFS_ERR_NOT_FOUND')).toBe(true);
    } finally {
      await store.close();
    }
  });
});
