// Compaction crash helper (spawned by block-store.test.ts): compacts block 1 while deleting
// the keys given on the command line, with UGCFS_TEST_CRASH_AT naming the step at which the
// process SIGKILLs itself. Prints "D <key>" for each acknowledged delete.
import { BlockStore } from '../../dataserver/block-store.ts';

const [dir, ...keys] = process.argv.slice(2);
if (!dir) throw new Error('usage: compact-step.ts DIR KEY...');
const store = await BlockStore.open({ dir, blockSize: 1 << 20, crashAt: process.env.UGCFS_TEST_CRASH_AT });
const compaction = store.compact(1);
await Promise.all(
  keys.map(async (k) => {
    const key = BigInt(k);
    await store.delete(1, key, Number(key));
    process.stdout.write(`D ${key}\n`);
  }),
);
await compaction;
process.stdout.write('DONE\n');
await store.close();
