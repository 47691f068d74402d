// The Node flags ugcfs processes run with are declared once, in bin/ugcfs.mjs's shebang line
// (`#!/usr/bin/env -S node FLAGS`), so running the bin directly applies them. Launchers that
// start it as `node bin/ugcfs.mjs` (test helpers, benchmarks) read them from there.
// V8 flags that only some supported runtimes know are set at run time instead (below): on a
// command line, a flag V8 does not know stops the process before it starts.
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';

export function ugcfsNodeFlags(binPath: string): string[] {
  const first = readFileSync(binPath, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: --?[\w=.-]+)*)\s*$/.exec(first);
  if (!m) throw new Error(`${binPath}: first line is not "#!/usr/bin/env -S node [flags]": ${first}`);
  return m[1]!.split(' ').filter(Boolean);
}

/**
 * V8 flags for this V8 version. Node 20's V8 (11.x) has no mid-tier compiler: a function
 * runs in baseline code (generic inline caches) until it has spent 3+ interrupt budgets of
 * 66 KiB of bytecode, and a data server's per-request functions, called a few hundred times
 * a second, spent much of a write load there. A quarter of the budget tiers them up sooner:
 * replicated 20 KB writes (replicas 2, on the bench writes section's cluster) took 10-20 % less data-server
 * CPU per write, in runs of 30,000 and of 80,000 writes alike. V8 12+ (Node 22, 24) tiers
 * through Maglev first and renamed the budget; there the same change measured slower, so
 * nothing is set.
 */
export function runtimeV8Flags(v8Version: string = process.versions.v8): string[] {
  const major = Number(v8Version.split('.')[0]);
  return major > 0 && major < 12 ? ['--interrupt-budget=16384'] : [];
}

/** Sets runtimeV8Flags() in this process; the first thing a role or the bench does. */
export function applyRuntimeV8Flags(): void {
  for (const flag of runtimeV8Flags()) setFlagsFromString(flag);
}
