// Runs one bench script to its end (bench/<script> with its flags), as the section runner does,
// for the benches' smoke tests: its exit code, stdout (the figures) and stderr (the progress).
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from '../helpers/proc.ts';
import { trackChild } from '../helpers/ready-process.ts';

export function runBenchScript(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'run-ts.mjs'), join('bench', script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    trackChild(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => res({ code, stdout, stderr }));
  });
}
