// The V8 flags ugcfs sets at run time (src/base/node-flags.ts): chosen by V8 version, and really
// in effect in the process that applies them.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runtimeV8Flags } from '../../src/base/node-flags.ts';
import { BIN, ROOT } from '../helpers/proc.ts';

/** Calls a small function needs before V8 has it TurboFan-compiled, in a fresh process. */
function callsToTurbofan(apply: boolean): number {
  const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--no-concurrent-recompilation', join(ROOT, 'bin/run-ts.mjs'), join(ROOT, 'test/deploy/tier-up-probe.ts'), ...(apply ? ['apply'] : [])], { encoding: 'utf8' });
  return Number(out.trim());
}

describe('runtime V8 flags', () => {
  it('lower the interrupt budget on V8 11 (Node 20) only', () => {
    expect(runtimeV8Flags('11.3.244.8-node.33')).toEqual(['--interrupt-budget=16384']);
    expect(runtimeV8Flags('12.4.254.21-node.33')).toEqual([]);
    expect(runtimeV8Flags('13.6.233.17-node.30')).toEqual([]);
    expect(runtimeV8Flags('')).toEqual([]);
  });

  it('take effect in the process that applies them, and leave other runtimes alone', () => {
    const plain = callsToTurbofan(false);
    const applied = callsToTurbofan(true);
    expect(plain).toBeGreaterThan(0);
    expect(plain).toBeLessThan(100_000);
    if (runtimeV8Flags().length > 0) expect(applied).toBeLessThan(plain / 2);
    else expect(applied).toBe(plain);
  });

  it('are applied by the bin before it loads a role', () => {
    const src = readFileSync(BIN, 'utf8');
    const applied = src.indexOf('applyRuntimeV8Flags()');
    expect(applied).toBeGreaterThan(0);
    expect(applied).toBeLessThan(src.indexOf("import('../cli/main.ts')"));
  });
});
