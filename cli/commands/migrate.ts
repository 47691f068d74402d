// `ugcfs migrate`: imports a legacy upload tree or a list of old URLs into the cluster and
// records every old path in the name server's legacy table. docs/MIGRATION.md is the guide.
import { resolve } from 'node:path';
import { opt, loadConfig, describeOptions } from '../../src/base/config.ts';
import { COMMON_SERVER_OPTIONS, NAMESERVER_URL_OPTION } from '../../src/base/role-options.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { legacyPathFromName } from '../../src/wire/legacy-path.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import { EXIT, type CommandModule } from '../command.ts';
import { MigrateState, stateFileName } from '../migrate/migrate-state.ts';
import { runMigration, type MigrateStore } from '../migrate/migrate-run.ts';
import { treeSource, urlSource, type Source } from '../migrate/migrate-sources.ts';
import { progressMeter, writeReport } from '../migrate/progress-meter.ts';
import { openMigrateStore, uploadPreparer } from '../migrate/cluster-store.ts';
import { removeScratchOrphans } from '../migrate/scratch-dir.ts';

export const MIGRATE_OPTIONS = {
  ...NAMESERVER_URL_OPTION,
  clusterSecret: { ...COMMON_SERVER_OPTIONS.clusterSecret, describe: 'the cluster secret: writes and the legacy table need it' },
  prefix: opt.string('', 'legacy path prefix the migrated names get, e.g. /uploads'),
  fromUrl: opt.url('', 'base URL of an old HTTP origin to copy from (with --list)'),
  list: opt.string('', 'file with one old path (or URL under --from-url) per line'),
  concurrency: opt.int(8, 'files in flight at once', { min: 1, max: 256 }),
  dryRun: opt.bool(false, 'report what would be copied; store and record nothing'),
  state: opt.string('', 'directory for the resumable state file (default: the current directory)'),
  json: opt.bool(false, 'print the final report as JSON'),
  maxUploadBytes: { ...ORIGIN_OPTIONS.maxUploadBytes, describe: 'largest file copied, images or not' },
  maxPixels: ORIGIN_OPTIONS.maxPixels,
  timeoutMs: opt.int(30_000, 'timeout per old-origin fetch and per image check', { min: 100 }),
  retries: opt.int(3, 'retries of a failed old-origin fetch (timeouts, 5xx, refused connections)', { min: 0, max: 10 }),
  testCrashAfterWrites: opt.int(0, 'TEST ONLY: SIGKILL this process right after its Nth write is acknowledged, before the mapping is recorded', { env: 'UGCFS_TEST_MIGRATE_CRASH_AFTER_WRITES', min: 0 }),
};

/** The crash-test hook: dies at the worst moment, bytes stored but not yet mapped. */
function crashAfter(n: number, store: MigrateStore): MigrateStore {
  if (n === 0) return store;
  let writes = 0;
  return {
    ...store,
    async write(data, mime, onAssigned) {
      const fid = await store.write(data, mime, onAssigned);
      if (++writes >= n) process.kill(process.pid, 'SIGKILL');
      return fid;
    },
  };
}

const mod: CommandModule = {
  summary: 'import a legacy upload tree or old origin and map every old path',
  usage: `ugcfs migrate DIR --prefix /uploads [options]
ugcfs migrate --from-url BASE --list FILE [options]

Copies every regular file into the cluster, images or not (images checked and cleaned
like an upload, every other file byte for byte, typed from its bytes or name), verifies
the copy, and maps its old path to the new file id, so the old URL keeps working through
the origin. Resumable after a kill and idempotent: rerun it any time.
Exit codes: 0 everything copied or skipped, 1 some files failed, 2 bad usage.

options:
${describeOptions(MIGRATE_OPTIONS)}
`,
  async run(ctx) {
    const { config, positionals } = loadConfig(MIGRATE_OPTIONS, { argv: ctx.argv, env: ctx.env });
    const fromUrl = config.fromUrl !== '';
    if (fromUrl && positionals.length) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'give either DIR or --from-url, not both');
    if (!fromUrl && positionals.length !== 1) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', positionals.length ? 'give exactly one DIR' : 'give a DIR to migrate, or --from-url BASE --list FILE');
    if (fromUrl && !config.list) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--from-url needs --list FILE');
    if (!fromUrl && config.list) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--list goes with --from-url');
    let prefix = '';
    if (config.prefix !== '' && config.prefix !== '/') {
      try {
        prefix = legacyPathFromName(config.prefix);
      } catch (err) {
        throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `--prefix ${JSON.stringify(config.prefix)}: ${(err as Error).message}`);
      }
    }

    const dir = fromUrl ? '' : resolve(positionals[0]!);
    const identity = fromUrl ? ['url', config.fromUrl, resolve(config.list), prefix, config.nameserver] : ['dir', dir, prefix, config.nameserver];
    const stateFile = stateFileName(resolve(config.state || '.'), identity);
    // What a SIGKILLed run left in the temp dir, before this run makes its own there.
    removeScratchOrphans();
    const source: Source = fromUrl
      ? await urlSource({ base: config.fromUrl, listFile: config.list, prefix, maxBytes: config.maxUploadBytes, timeoutMs: config.timeoutMs, retries: config.retries })
      : await treeSource(dir, prefix, config.maxUploadBytes);
    try {
      const store = await openMigrateStore(config);
      try {
        const state = config.dryRun ? MigrateState.none() : await MigrateState.open(stateFile);
        try {
          const meter = progressMeter(ctx.stderr, 'migrate');
          const report = await runMigration(source.entries, {
            store: crashAfter(config.testCrashAfterWrites, store),
            state,
            prepare: uploadPreparer({ maxPixels: config.maxPixels, timeoutMs: config.timeoutMs }),
            dryRun: config.dryRun,
            concurrency: config.concurrency,
            expected: source.expected,
            onProgress: (p) => meter.update(p),
          });
          meter.finish();
          try {
            await writeReport(ctx.stdout, report, { json: config.json, ...(config.dryRun ? {} : { stateFile }) });
          } finally {
            report.skips.close();
            report.failures.close();
          }
          return report.failed > 0 ? EXIT.failed : EXIT.ok;
        } finally {
          await state.close();
        }
      } finally {
        await store.close();
      }
    } finally {
      await source.close();
    }
  },
};
export const { summary, usage, run } = mod;
