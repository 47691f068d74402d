#!/usr/bin/env -S node --max-semi-space-size=16 --initial-old-space-size=64
// The shebang carries the Node flags every ugcfs process runs with, declared here once
// (src/base/node-flags.ts reads them for launchers that start `node bin/ugcfs.mjs` themselves):
// --max-semi-space-size=16 keeps V8's young generation at Node 20/22's 2 x 16 MiB. Node 24
// sizes it from the machine's memory (up to 2 x 64 MiB on 24 GiB), which let an origin's
// resident set settle near 430 MB instead of 200 MB under the same load: the heap itself,
// and the Buffers that wait longer for a scavenge to free them (docs/OPERATIONS-GUIDE.md, Starting).
// --initial-old-space-size=64 lets the old generation reach 64 MiB before V8 marks it. A data
// server's heap is small (~17 MiB live) and V8 sized its old-generation limit from that
// (~40 MiB), so under a steady write load it started incremental marking every ~200 ms, as
// the slack fell under what a 16 MiB young generation may promote: a mark-compact 5 times a
// second on each data server (49-102 in 30,000 replicated writes across three; 2-6 with the
// flag, collector time per run 1.0-1.7 s -> 0.5-0.6 s). Heaps larger than that are unaffected.
// V8 flags that depend on the runtime's V8 version are set at run time, before any role's
// code is loaded (src/base/node-flags.ts, runtimeV8Flags).
// Runs the TypeScript sources directly through tsx, so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';
register();
(await import('../src/base/node-flags.ts')).applyRuntimeV8Flags();
await import('../cli/main.ts');
