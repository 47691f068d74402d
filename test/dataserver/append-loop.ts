// Crash-test writer (spawned by crash-recovery.test.ts): appends through the real storage
// engine with fsync on, several writes in flight, some deletes, rolling to a new block when
// one seals. Prints "P <block> <key>" after each acknowledged put, "d ..." before a delete
// and "D ..." once it is acknowledged, and is SIGKILLed at a random moment by the test.
import { BlockStore } from '../../dataserver/block-store.ts';
import { isUgcfsError } from '../../src/base/errors.ts';
import { recordData } from './record-data.ts';

const [dir, runText, blockSizeText] = process.argv.slice(2);
if (!dir || !runText) throw new Error('usage: append-loop.ts DIR RUN [BLOCK_SIZE]');
const run = BigInt(runText);
const store = await BlockStore.open({ dir, blockSize: Number(blockSizeText ?? 2 * 1024 * 1024), fsync: true, crashAt: process.env.UGCFS_TEST_CRASH_AT });

let block = Math.max(0, ...store.reports().map((r) => r.id));
if (block === 0 || store.block(block).writeRefusal()) await store.createBlock(++block);
process.stdout.write(`READY ${block}\n`);

let next = 0n;
// Workers wait for the next block to exist before writing to it.
let ready: Promise<unknown> = Promise.resolve();
const IN_FLIGHT = 6;
async function worker(): Promise<void> {
  for (;;) {
    await ready;
    const key = run * 1_000_000n + next++;
    const b = block;
    try {
      await store.put(b, { key, cookie: Number(key & 0xffffffffn), uploadTime: 1_700_000_000_000, mime: 'application/octet-stream', owner: `run-${run}` }, recordData(key));
    } catch (err) {
      if (!isUgcfsError(err, 'UGCFS_ERR_BLOCK_READONLY')) throw err;
      if (block === b) {
        block = b + 1;
        ready = store.createBlock(block);
      }
      continue;
    }
    process.stdout.write(`P ${b} ${key}\n`);
    if (key % 7n === 3n) {
      process.stdout.write(`d ${b} ${key}\n`);
      await store.delete(b, key, Number(key & 0xffffffffn));
      process.stdout.write(`D ${b} ${key}\n`);
    }
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, () => worker()));
