// Run by node-flags.test.ts in a child started with --allow-natives-syntax and
// --no-concurrent-recompilation: prints how many calls a small function takes to reach
// TurboFan, after applying ugcfs's runtime V8 flags when the first argument is "apply".
import { applyRuntimeV8Flags } from '../../src/base/node-flags.ts';

if (process.argv[2] === 'apply') applyRuntimeV8Flags();
function hot(a: number): number {
  let s = 0;
  for (let i = 0; i < 20; i++) s += (a * i) & 7;
  return s;
}
// Natives syntax is V8's, not TypeScript's: compiled by V8 itself, out of the transpiler's reach.
const status = new Function('f', 'return %GetOptimizationStatus(f)') as (f: unknown) => number;
const TURBOFANNED = 1 << 6;
let calls = 0;
while ((status(hot) & TURBOFANNED) === 0 && calls < 100_000) hot(calls++);
process.stdout.write(`${calls}\n`);
