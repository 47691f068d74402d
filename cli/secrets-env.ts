// `<data>/secrets.env`: the credentials of a one-machine cluster (`ugcfs server`), made on its
// first start and read on every later one, so a newcomer's cluster never runs without them
// and the README's lines find them (`set -a; . data/secrets.env; set +a`).
//
// Layout (version 1): `#` comment lines, then one `NAME=value` line per credential, values
// without quotes or spaces (hex), in the order of SECRET_NAMES; mode 0600, owned by whoever
// started the server. A name missing from an older file is generated and the file rewritten.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkCredential } from '../src/base/config.ts';
import { writeFileDurable } from '../src/base/durable-fs.ts';
import { UgcfsError } from '../src/base/errors.ts';

export const SECRETS_FILE = 'secrets.env';

/** What the file holds, by environment name (the names every role and the CLI read). */
export const SECRET_NAMES = ['UGCFS_CLUSTER_SECRET', 'UGCFS_ORIGIN_SECRET', 'UGCFS_ADMIN_TOKEN', 'UGCFS_UPLOAD_TOKENS'] as const;
export type SecretName = (typeof SECRET_NAMES)[number];
export type Secrets = Record<SecretName, string>;

const HEADER = [
  '# ugcfs credentials for this data directory (mode 0600). Made on the first start of',
  '# `ugcfs server`; delete a line to have it made anew on the next start.',
  '# Use them in a shell:  set -a; . ./secrets.env; set +a',
];

function parse(text: string, path: string): Partial<Secrets> {
  const out: Partial<Secrets> = {};
  for (const [n, raw] of text.split('\n').entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Z_]+)=(\S+)$/.exec(line);
    if (!m || !(SECRET_NAMES as readonly string[]).includes(m[1]!)) {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `${path}:${n + 1} is not a NAME=value line of ${SECRET_NAMES.join(', ')}`);
    }
    out[m[1] as SecretName] = m[2]!;
  }
  return out;
}

/**
 * The secrets of the data directory `root`: read from its secrets.env, any missing one
 * generated (32 random bytes, hex) and the file (re)written with mode 0600. Every value read
 * is held to the rule of all credentials (checkCredential).
 */
export async function loadOrCreateSecrets(root: string): Promise<{ secrets: Secrets; path: string; created: SecretName[] }> {
  const path = join(root, SECRETS_FILE);
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const found = text === undefined ? {} : parse(text, path);
  const created: SecretName[] = [];
  const secrets = {} as Secrets;
  for (const name of SECRET_NAMES) {
    const have = found[name];
    if (have !== undefined) {
      for (const v of have.split(',')) checkCredential(`${name} (from ${path})`, v);
      secrets[name] = have;
    } else {
      secrets[name] = randomBytes(32).toString('hex');
      created.push(name);
    }
  }
  if (created.length > 0) {
    await writeFileDurable(path, [...HEADER, ...SECRET_NAMES.map((n) => `${n}=${secrets[n]}`), ''].join('\n'), 0o600);
  }
  return { secrets, path, created };
}
