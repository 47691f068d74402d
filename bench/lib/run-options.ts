// The runner's options (`npm run bench -- --help`), apart from bench/run.ts so the doc's
// "How to run" can quote their defaults.
import { opt } from '../../src/base/config.ts';
import { ints } from './flags.ts';

/** The sections, in the order they run and appear in docs/BENCHMARKS.md. */
export const SECTION_ORDER = ['reads', 'writes', 'images', 'scale', 'recovery', 'ha', 'ns-scale', 'profile', 'external'];

/** --wait-quiet waits at most this long per section for the load average to drop */
export const WAIT_QUIET_MS = 3 * 60_000;

export const RUN_OPTIONS = {
  only: opt.list(SECTION_ORDER, 'the sections to run; the others keep their last figures', { choices: SECTION_ORDER }),
  quick: opt.bool(false, 'fewer and shorter runs, for a smoke check'),
  runs: opt.int(3, 'rounds per figure (the median is reported)', { min: 1 }),
  duration: opt.number(4, 'seconds per run', { min: 1 }),
  externalFull: opt.bool(false, "the parts' own scripts in their full form; slower"),
  waitQuiet: opt.bool(false, `before each section, wait up to ${WAIT_QUIET_MS / 60_000} min for the load average to drop below the core count`),
  noDoc: opt.bool(false, 'touch nothing in docs/'),
  // The TLS figures are a section's own entry (`reads-tls`), shown in its part of the doc beside
  // the plain ones; a section without a TLS mode is skipped under --tls.
  tls: opt.bool(false, 'reads and writes over HTTPS: every ugcfs role and nginx on a throwaway CA made with openssl; stored apart from the plain figures'),
  out: opt.string('', 'store results.json and BENCHMARKS.md in this directory instead of docs/ (a trial run; it starts from the figures stored there, else from docs/)'),
  render: opt.bool(false, 'only rewrite docs/BENCHMARKS.md from docs/benchmarks/results.json'),
  // A section's work directory lives until the section ends. The writes section keeps every
  // replica of thousands of 20 KB writes a second (replicas 1-3, two clusters) and nginx's
  // copies over all its rounds: several GB. The scale section keeps 1.1 million 1 KB records
  // with their LevelDB indexes: over 1 GB. 10 GiB covers either with room for the system;
  // a run of lighter sections can lower it.
  minFreeGib: opt.number(10, 'refuse to start with less free disk in the scratch directory (os.tmpdir())', { min: 0 }),
  // The ha section: SIGKILLs of the leading name server per lease, and the records written to
  // weigh them in etcd.
  haKills: opt.int(10, 'ha section: SIGKILLs of the leading name server per --lease-ms value', { min: 1 }),
  haLeaseMs: ints([5000, 2000], "ha section: the name servers' --lease-ms values failover is measured at", { min: 1000 }),
  etcdRecords: opt.int(100_000, 'ha section: block records and legacy paths written (each) to weigh them in etcd', { min: 1000 }),
  // The ns-scale section: 1M blocks take ~5 min and 0.5 GB; 8M take far longer and several GB.
  nsScaleBlocks: ints([1_000_000, 8_000_000], 'ns-scale section: block counts the name server is measured at (1M on 100 simulated data servers, 8M on 400)', { min: 1000 }),
};

export const RUN_QUICK = { runs: 2, duration: 2, haKills: 3, etcdRecords: 20_000 };
