// The import rules of docs/ENGINEERING.md ("The tree") and src/README.md, checked on every
// relative import: roles (origin/, nameserver/, dataserver/) import only src/ and
// themselves; src/ imports only src/, each of its groups only those below it; cli/ may
// start every role. A role importing another would couple processes
// that run apart.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/proc.ts';

const MAY_IMPORT: Record<string, string[]> = {
  src: ['src'],
  origin: ['origin', 'src'],
  nameserver: ['nameserver', 'src'],
  dataserver: ['dataserver', 'src'],
  cli: ['cli', 'src', 'origin', 'nameserver', 'dataserver'],
};

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

const IMPORT = /(?:from\s+|import\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

describe('the tree', () => {
  it('each folder imports only what docs/ENGINEERING.md allows', () => {
    const broken: string[] = [];
    let checked = 0;
    for (const [top, allowed] of Object.entries(MAY_IMPORT)) {
      for (const file of tsFiles(join(ROOT, top))) {
        for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
          const target = relative(ROOT, resolve(dirname(file), m[1]!)).split('/')[0]!;
          checked++;
          if (!allowed.includes(target)) broken.push(`${relative(ROOT, file)} imports ${m[1]} (${top}/ may import ${allowed.join(', ')})`);
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
    expect(broken).toEqual([]);
  });

  it('inside src/, each group imports only what src/README.md allows', () => {
    const SRC_MAY_IMPORT: Record<string, string[]> = {
      base: ['base'],
      wire: ['base', 'wire'],
      http: ['base', 'wire', 'http'],
      clients: ['base', 'wire', 'clients'],
    };
    const broken: string[] = [];
    for (const [group, allowed] of Object.entries(SRC_MAY_IMPORT)) {
      for (const file of tsFiles(join(ROOT, 'src', group))) {
        for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
          const target = relative(join(ROOT, 'src'), resolve(dirname(file), m[1]!)).split('/')[0]!;
          if (!allowed.includes(target)) broken.push(`${relative(ROOT, file)} imports ${m[1]} (src/${group}/ may import ${allowed.join(', ')})`);
        }
      }
    }
    // every file of src/ is in a group
    expect(readdirSync(join(ROOT, 'src')).filter((n) => n.endsWith('.ts'))).toEqual([]);
    expect(broken).toEqual([]);
  });

  it('no source file of src/, origin/, nameserver/, dataserver/ or cli/ is over 400 lines', () => {
    const long = Object.keys(MAY_IMPORT)
      .flatMap((top) => tsFiles(join(ROOT, top)))
      .map((f) => [relative(ROOT, f), readFileSync(f, 'utf8').split('\n').length - 1] as const)
      .filter(([, n]) => n > 400);
    expect(long).toEqual([]);
  });
});
