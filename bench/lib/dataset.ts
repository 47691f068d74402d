// Files the read and write benchmarks serve: random (incompressible) bytes at the sizes
// the issues name, written once per run so every server reads the very same bytes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export interface SizeClass {
  label: string;
  bytes: number;
}

export const SIZES: readonly SizeClass[] = [
  { label: '1 KB', bytes: 1024 },
  { label: '20 KB', bytes: 20 * 1024 },
  { label: '200 KB', bytes: 200 * 1024 },
];

/** Writes `count` files of `bytes` each into dir; names are `<prefix><i>.bin`. */
export function writeFiles(dir: string, bytes: number, count: number, prefix = 'f'): string[] {
  mkdirSync(dir, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}${i}.bin`;
    writeFileSync(join(dir, name), randomBytes(bytes));
    names.push(name);
  }
  return names;
}
