// Generates docs/ERRORS.md from the error catalogue (src/base/errors.ts), so the documented codes
// can never drift from what servers send: `npm run docs:errors` rewrites it, and
// test/errors.test.ts fails when it is stale.
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERRORS } from '../src/base/errors.ts';

export const ERRORS_DOC = fileURLToPath(new URL('../docs/ERRORS.md', import.meta.url));

export function renderErrorsReference(): string {
  const rows = Object.entries(ERRORS).map(([code, spec]) => `| \`${code}\` | ${spec.status} | ${spec.description.replace(/\|/g, '\\|')} |`);
  return [
    '# Error codes',
    '',
    '<!-- Generated from src/base/errors.ts by `npm run docs:errors`; do not edit by hand. -->',
    '',
    'Every ugcfs server answers an error with the HTTP status below and the body',
    '`{"error":{"code":"UGCFS_ERR_…","message":"…"}}`. Codes are stable: a code never changes',
    'meaning and is never reused; the message is for people and may change. Branch on the code.',
    'The CLI prints the message and the code on one line and exits 2 for bad usage',
    '(`UGCFS_ERR_BAD_USAGE`), 1 for anything else.',
    '',
    '| code | HTTP status | meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  writeFileSync(ERRORS_DOC, renderErrorsReference());
  process.stdout.write(`wrote ${ERRORS_DOC}\n`);
}
