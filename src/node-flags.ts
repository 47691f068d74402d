// The Node flags ugcfs processes run with are declared once, in bin/ugcfs.mjs's shebang line
// (`#!/usr/bin/env -S node FLAGS`), so running the bin directly applies them. Launchers that
// start it as `node bin/ugcfs.mjs` (test helpers, benchmarks) read them from there.
import { readFileSync } from 'node:fs';

export function ugcfsNodeFlags(binPath: string): string[] {
  const first = readFileSync(binPath, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\/usr\/bin\/env -S node((?: --?[\w=.-]+)*)\s*$/.exec(first);
  if (!m) throw new Error(`${binPath}: first line is not "#!/usr/bin/env -S node [flags]": ${first}`);
  return m[1]!.split(' ').filter(Boolean);
}
