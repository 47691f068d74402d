#!/usr/bin/env -S node --max-semi-space-size=16
// The shebang carries the Node flags every ugcfs process runs with, declared here once
// (src/node-flags.ts reads them for launchers that start `node bin/ugcfs.mjs` themselves):
// --max-semi-space-size=16 keeps V8's young generation at Node 20/22's 2 x 16 MiB. Node 24
// sizes it from the machine's memory (up to 2 x 64 MiB on 24 GiB), which let an origin's
// resident set settle near 430 MB instead of 200 MB under the same load: the heap itself,
// and the Buffers that wait longer for a scavenge to free them (docs/OPERATIONS-GUIDE.md, Starting).
// Runs the TypeScript sources directly through tsx, so a fresh clone needs no build step.
import { register } from 'tsx/esm/api';
register();
await import('../cli/main.ts');
