// `npm run bench`: measures ugcfs side by side with the peers users would pick instead
// (nginx, a bare Node server, bare sharp), on this machine, in this run. Each section stores
// its figures in docs/benchmarks/results.json, and docs/BENCHMARKS.md is rendered from them
// and the templates in bench/templates/. It installs nothing; missing peers are named and
// skipped. `npm run bench -- --help` lists every option (bench/lib/run-options.ts).
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { detectTools, freeDiskMessage, missingMessage } from './lib/preflight.ts';
import { parseFlags } from './lib/flags.ts';
import { machineInfo } from './lib/machine.ts';
import { loadResults, saveResults } from './lib/results.ts';
import { renderDoc } from './lib/doc.ts';
import { RUN_OPTIONS, RUN_QUICK, SECTION_ORDER, WAIT_QUIET_MS } from './lib/run-options.ts';
import { ROOT, killAll } from './lib/spawn.ts';
import { makeBenchTls } from './lib/tls.ts';
import type { Section } from './lib/context.ts';
import { applyRuntimeV8Flags } from '../src/base/node-flags.ts';

// The load generator drives nginx and ugcfs alike, with the V8 flags of an ugcfs process.
applyRuntimeV8Flags();

const SECTIONS: Record<string, () => Promise<Section>> = {
  reads: async () => (await import('./lib/sections/reads.ts')).section,
  writes: async () => (await import('./lib/sections/writes.ts')).section,
  images: async () => (await import('./lib/sections/images.ts')).section,
  scale: async () => (await import('./lib/sections/scale.ts')).section,
  recovery: async () => (await import('./lib/sections/recovery.ts')).section,
  ha: async () => (await import('./lib/sections/ha.ts')).section,
  'ns-scale': async () => (await import('./lib/sections/ns-scale.ts')).section,
  profile: async () => (await import('./lib/sections/profile.ts')).section,
  external: async () => (await import('./lib/sections/external.ts')).section,
};

const flags = parseFlags({ name: 'bench', run: 'npm run bench --' }, RUN_OPTIONS, { quick: RUN_QUICK });
const { quick, runs, duration: durationS, only } = flags;
const storedPath = join(ROOT, 'docs', 'benchmarks', 'results.json');
const resultsPath = flags.out ? join(flags.out, 'results.json') : storedPath;
const docPath = flags.out ? join(flags.out, 'BENCHMARKS.md') : join(ROOT, 'docs', 'BENCHMARKS.md');
if (flags.out) mkdirSync(flags.out, { recursive: true });
// A trial run (--out) adds its figures to those stored there, else to docs/'s.
const loadStored = () => loadResults(existsSync(resultsPath) ? resultsPath : storedPath);
if (flags.render) {
  // The doc from the stored results alone: no peer, tool or disk space is needed for that.
  writeFileSync(docPath, renderDoc(loadStored()));
  process.stderr.write(`bench: wrote ${docPath}\n`);
  process.exit(0);
}
const diskFull = await freeDiskMessage(tmpdir(), flags.minFreeGib);
if (diskFull) {
  process.stderr.write(diskFull + '\n');
  process.exit(2);
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
const results = loadStored();
let failed = 0;

for (const id of SECTION_ORDER.filter((s) => only.includes(s))) {
  const section = await SECTIONS[id]!();
  if (flags.tls && !section.tls) {
    log(`${id}: no TLS mode, skipped under --tls`);
    continue;
  }
  // --tls figures are stored apart, so they never replace the plain ones.
  const key = flags.tls ? `${id}-tls` : id;
  const cores = machine.cores;
  if (flags.waitQuiet) {
    // Other work on a shared machine skews every figure; wait (a while) for it to calm down.
    const until = Date.now() + WAIT_QUIET_MS;
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
    const ha = { kills: flags.haKills, leaseMs: flags.haLeaseMs as readonly number[], etcdRecords: flags.etcdRecords };
    const tls = flags.tls ? makeBenchTls(join(work, 'tls')) : undefined;
    const out = await section.run({ tools, machine: machineNow, quick, externalFull: flags.externalFull, runs, durationS, work, log, ha, tls });
    results.sections[key] = {
      id: key,
      title: tls ? `${section.title}, over HTTPS` : section.title,
      measuredAt: new Date().toISOString().slice(0, 16).replace('T', ' ') + ' UTC',
      machine: machineNow,
      quick,
      loadEnd: loadavg().map((x) => Math.round(x * 100) / 100),
      seconds: Math.round((Date.now() - started) / 1000),
      values: out.values,
      goals: out.goals,
      commands: [`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`, ...out.commands],
      data: out.data,
    };
    // The doc is rewritten after every section, so an interrupted run leaves it consistent;
    // --no-doc leaves docs/ alone entirely (the stored results included).
    if (!flags.noDoc) {
      saveResults(resultsPath, results);
      writeFileSync(docPath, renderDoc(results));
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
  writeFileSync(docPath, renderDoc(results));
  log(`wrote ${docPath}`);
}
process.exit(failed ? 1 : 0);
