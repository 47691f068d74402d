#!/usr/bin/env node
// Runs any TypeScript entry point (benchmarks, scripts) the same way the ugcfs bin does.
import { register } from 'tsx/esm/api';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';
register();
const entry = process.argv[2];
if (!entry) { process.stderr.write('usage: run-ts.mjs FILE.ts [args]\n'); process.exit(2); }
process.argv.splice(1, 1);
await import(pathToFileURL(resolve(entry)).href);
