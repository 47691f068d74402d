// `npm run bench`: measures ugcfs side by side with the peers users would pick instead
// (nginx, a bare Node server, bare sharp), on this machine, in this run, and writes
// docs/BENCHMARKS.md. It installs nothing; missing peers are named and skipped.
//
//   npm run bench                        every section (about 20 minutes on 2 cores)
//   npm run bench -- --only reads,writes  some sections; the others keep their last figures
//   npm run bench -- --quick              fewer and shorter runs, for a smoke check
//   npm run bench -- --render            rewrite docs/BENCHMARKS.md from docs/benchmarks/results.json
//   options: --runs N (rounds per figure), --duration S (seconds per run), --no-doc (touch nothing in docs/),
//            --wait-quiet (before each section, wait up to 3 min for the load average to drop below the core count),
//            --external-full (the parts' own scripts in their full form; slower),
//            --min-free-gib N (refuse to start with less free disk for the scratch work; default 10)
//   npm run bench -- --help              every option, with its default
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { detectTools, freeDiskMessage, missingMessage } from './lib/preflight.ts';
import { parseFlags } from './lib/flags.ts';
import { opt } from '../src/config.ts';
import { machineInfo } from './lib/machine.ts';
import { loadResults, saveResults } from './lib/results.ts';
import { renderDoc, SECTION_ORDER } from './lib/doc.ts';
import { ROOT, killAll } from './lib/spawn.ts';
import type { Section } from './lib/context.ts';
import { INTRO } from './lib/intro.ts';
import { applyRuntimeV8Flags } from '../src/node-flags.ts';

// The load generator drives nginx and ugcfs alike, with the V8 flags of an ugcfs process.
applyRuntimeV8Flags();

const SECTIONS: Record<string, () => Promise<Section>> = {
  reads: async () => (await import('./lib/sections/reads.ts')).section,
  writes: async () => (await import('./lib/sections/writes.ts')).section,
  images: async () => (await import('./lib/sections/images.ts')).section,
  scale: async () => (await import('./lib/sections/scale.ts')).section,
  recovery: async () => (await import('./lib/sections/recovery.ts')).section,
  profile: async () => (await import('./lib/sections/profile.ts')).section,
  external: async () => (await import('./lib/sections/external.ts')).section,
};

const flags = parseFlags({ name: 'bench', run: 'npm run bench --' }, {
  only: opt.list(SECTION_ORDER, 'the sections to run; the others keep their last figures', { choices: Object.keys(SECTIONS) }),
  quick: opt.bool(false, 'fewer and shorter runs, for a smoke check'),
  runs: opt.int(3, 'rounds per figure (the median is reported)', { min: 1 }),
  duration: opt.number(4, 'seconds per run', { min: 1 }),
  externalFull: opt.bool(false, "the parts' own scripts in their full form; slower"),
  waitQuiet: opt.bool(false, 'before each section, wait up to 3 min for the load average to drop below the core count'),
  noDoc: opt.bool(false, 'touch nothing in docs/'),
  render: opt.bool(false, 'only rewrite docs/BENCHMARKS.md from docs/benchmarks/results.json'),
  // A section's work directory lives until the section ends. The writes section keeps every
  // replica of thousands of 20 KB writes a second (replicas 1-3, two clusters) and nginx's
  // copies over all its rounds: several GB. The scale section keeps 1.1 million 1 KB records
  // with their LevelDB indexes: over 1 GB. 10 GiB covers either with room for the system;
  // a run of lighter sections can lower it.
  minFreeGib: opt.number(10, 'refuse to start with less free disk in the scratch directory (os.tmpdir())', { min: 0 }),
}, { quick: { runs: 2, duration: 2 } });
const { quick, runs, duration: durationS } = flags;
const only = flags.render ? [] : flags.only;
if (only.length > 0) {
  const diskFull = await freeDiskMessage(tmpdir(), flags.minFreeGib);
  if (diskFull) {
    process.stderr.write(diskFull + '\n');
    process.exit(2);
  }
}

const log = (msg: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${msg}\n`);
// Ctrl-C, or a kill from another shell or a CI timeout: the servers it started go with it.
process.on('SIGINT', () => { killAll(); process.exit(130); });
process.on('SIGTERM', () => { killAll(); process.exit(143); });

const tools = await detectTools();
const missing = missingMessage(tools);
if (missing) process.stderr.write(missing + '\n');
if (!tools.wrk && !tools.nginx) {
  process.stderr.write('bench: neither wrk nor nginx is installed; nothing meaningful can be compared. apt-get install wrk nginx libnginx-mod-http-image-filter\n');
  process.exit(1);
}
const machine = await machineInfo(tools);
const resultsPath = join(ROOT, 'docs', 'benchmarks', 'results.json');
const results = loadResults(resultsPath);
let failed = 0;

for (const id of SECTION_ORDER.filter((s) => only.includes(s))) {
  const section = await SECTIONS[id]!();
  const cores = machine.cores;
  if (flags.waitQuiet) {
    // Other work on a shared machine skews every figure; wait (a while) for it to calm down.
    const until = Date.now() + 3 * 60_000;
    while (loadavg()[0]! > cores && Date.now() < until) {
      log(`${id}: load average ${loadavg()[0]!.toFixed(1)} on ${cores} cores, waiting for it to drop below ${cores}`);
      await new Promise((r) => setTimeout(r, 15_000));
    }
  }
  if (loadavg()[0]! > 2 * cores) log(`${id}: the machine is busy (load average ${loadavg()[0]!.toFixed(1)} on ${cores} cores); figures will be noisy`);
  const work = mkdtempSync(join(tmpdir(), `ugcfs-bench-${id}-`));
  const started = Date.now();
  log(`${section.title}: starting`);
  try {
    const machineNow = { ...machine, loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100) };
    const out = await section.run({ tools, machine: machineNow, quick, externalFull: flags.externalFull, runs, durationS, work, log });
    results.sections[id] = {
      id,
      title: section.title,
      measuredAt: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      machine: machineNow,
      quick,
      loadEnd: loadavg().map((x) => Math.round(x * 100) / 100),
      seconds: Math.round((Date.now() - started) / 1000),
      markdown: out.markdown,
      goals: out.goals,
      commands: [`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`, ...out.commands],
      data: out.data,
    };
    // The doc is rewritten after every section, so an interrupted run leaves it consistent;
    // --no-doc leaves docs/ alone entirely (the stored results included).
    if (!flags.noDoc) {
      saveResults(resultsPath, results);
      writeFileSync(join(ROOT, 'docs', 'BENCHMARKS.md'), renderDoc(results, INTRO));
    }
    log(`${section.title}: done in ${Math.round((Date.now() - started) / 1000)} s`);
  } catch (err) {
    failed++;
    log(`${section.title}: FAILED: ${(err as Error).stack ?? err}`);
  } finally {
    killAll();
    rmSync(work, { recursive: true, force: true });
  }
}

if (!flags.noDoc) {
  writeFileSync(join(ROOT, 'docs', 'BENCHMARKS.md'), renderDoc(results, INTRO));
  log('wrote docs/BENCHMARKS.md');
}
process.exit(failed ? 1 : 0);
