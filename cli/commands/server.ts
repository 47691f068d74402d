// `ugcfs server` (what `npm start` runs): the one-machine cluster — a name server, N data
// servers and an origin on loopback — each role a process of its own, started as
// `ugcfs nameserver|dataserver|origin` with the values below, so what a newcomer tries is what
// operators run, a stall in one role (a big body, a slow disk) stalls no other, and the origin
// uses every core (`--workers`, one per core by default). cli/supervisor.ts restarts a role
// that dies and stops them all in order on Ctrl-C / SIGTERM (docs/OPERATIONS-GUIDE.md, "Single box").
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { describeOptions, flagName, loadConfig, opt, type ConfigOf } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import { createLogger } from '../../src/base/log.ts';
import { COMMON_SERVER_OPTIONS } from '../../src/base/role-options.ts';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import { DATASERVER_OPTIONS } from '../../dataserver/config.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { checkLegacyOptions } from '../../origin/legacy-read-through.ts';
import type { CommandModule } from '../command.ts';
import { passedValues, roleCommand, roleOptions, RoleStartError } from '../role-process.ts';
import { loadOrCreateSecrets } from '../secrets-env.ts';
import { Supervisor } from '../supervisor.ts';

/** The secrets: each role's come from this command's options or <data>/secrets.env. */
const SECRETS = ['clusterSecret', 'originSecret'] as const;

/**
 * What the all-in-one decides for each role; every other option of the role's table is
 * passed through, by its own flag (cli/role-process.ts, roleOptions). The decided ones are its
 * ports, directories, ids, the name server's URL and the secrets, the options below that
 * stand for them, and a data server's TEST ONLY hooks.
 */
export const ALL_IN_ONE_ROLES = {
  nameserver: roleOptions(NAMESERVER_OPTIONS, [...SECRETS, 'data', 'port', 'replicas', 'adminToken']),
  dataserver: roleOptions(DATASERVER_OPTIONS, [...SECRETS, 'nameserver', 'data', 'port', 'id', 'rack', 'publicUrl', 'blockSize', 'fsync', 'testCrashAt', 'testClockOffsetMs']),
  origin: roleOptions(ORIGIN_OPTIONS, [...SECRETS, 'nameserver', 'port', 'cacheDir', 'cacheBytes', 'workers', 'uploadTokens', 'adminToken']),
};

/** This command's own options: the one-machine cluster's shape, and what it decides for the roles. */
export const SERVER_OWN_OPTIONS = {
  // Given or not, the one-machine cluster has one: <data>/secrets.env supplies what is not given.
  clusterSecret: { ...COMMON_SERVER_OPTIONS.clusterSecret, required: false, describe: 'shared secret every internal route asks for (at least 32 characters; default: from <data>/secrets.env, made on the first start)' },
  originSecret: COMMON_SERVER_OPTIONS.originSecret,
  data: opt.string('./data', 'directory for all state: nameserver/, ds-1/..., cache/ (created if missing)', { env: 'UGCFS_DATA' }),
  port: opt.int(8080, 'origin port (0 picks a free one)', { env: 'UGCFS_ORIGIN_PORT', min: 0, max: 65535 }),
  nameserverPort: opt.int(7000, 'name server port (0 picks a free one)', { env: 'UGCFS_NAMESERVER_PORT', min: 0, max: 65535 }),
  dataserverPort: opt.int(7001, 'first data server port; the others count up from it (0: free ports)', { env: 'UGCFS_DATASERVER_PORT', min: 0, max: 65535 }),
  dataservers: opt.int(3, 'data servers to run', { min: 1, max: 32 }),
  replicas: opt.int(2, 'copies of every block (at most --dataservers)', { min: 1, max: 8 }),
  blockSize: opt.int(DATASERVER_OPTIONS.blockSize.default, 'block file size at which a block is sealed (accepts 64M etc.)', { min: 4096, max: 2 ** 40 }),
  fsync: opt.bool(true, 'fdatasync block files before acknowledging writes', { env: 'UGCFS_FSYNC' }),
  cacheBytes: opt.int(256 * 1024 * 1024, 'size bound of the origin\'s disk cache of variants under <data>/cache', { min: 0 }),
  originWorkers: opt.int(0, 'origin processes serving --port together, each with its share of the caches (0: one per core)', { env: 'UGCFS_ORIGIN_WORKERS', min: 0, max: ORIGIN_OPTIONS.workers.max }),
  uploadTokens: opt.list([], 'bearer tokens allowed to upload (default: the one in <data>/secrets.env)', { env: 'UGCFS_UPLOAD_TOKENS', secret: true }),
  adminToken: opt.string('', 'token for admin calls and deleting any file (default: from <data>/secrets.env)', { env: 'UGCFS_ADMIN_TOKEN', secret: true }),
};

/** Its own options first, then every role's passed through (those shared, host, log level, TLS..., go to each role). */
export const SERVER_OPTIONS = {
  ...SERVER_OWN_OPTIONS,
  ...ALL_IN_ONE_ROLES.nameserver.options,
  ...ALL_IN_ONE_ROLES.dataserver.options,
  ...ALL_IN_ONE_ROLES.origin.options,
  ...SERVER_OWN_OPTIONS,
};

export type ServerConfig = ConfigOf<typeof SERVER_OPTIONS>;

/** The flags passed through, those every role takes first, then each role's own (--help, docs/CONFIGURATION.md). */
export function passedFlags(): Array<{ to: string; flags: string[] }> {
  const roles = Object.entries(ALL_IN_ONE_ROLES).map(([role, r]) => ({ role, keys: Object.keys(r.options) }));
  const everyRole = roles[0]!.keys.filter((k) => roles.every((r) => r.keys.includes(k)));
  return [
    { to: 'every role', flags: everyRole.map(flagName) },
    ...roles.map((r) => ({ to: r.role, flags: r.keys.filter((k) => !everyRole.includes(k)).map(flagName) })),
  ];
}

/** An unusable data directory is a usage error with one line, before anything opens. */
function prepareDataRoot(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error('not a directory'), { code: 'ENOTDIR' });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (err) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --data: ${dir} is not a writable directory (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** What the welcome lines and the `listening` line name. */
export interface RunningAllInOne {
  /** <data>/secrets.env, where the credentials not given by flag or environment come from */
  secretsPath: string;
  /** the upload token came from secrets.env (the welcome lines can name its variable) */
  uploadTokenFromFile: boolean;
  nameserver: { url: string };
  dataservers: Array<{ url: string; id: string }>;
  origin: { url: string; workers: number };
}

/** The port a role's URL names (a role started on port 0 is restarted on the one it got). */
const portOf = (url: string) => Number(new URL(url).port);

/**
 * Starts every role as a process of its own under `supervisor`, in order: the name server,
 * the data servers, the origin. Each gets the values below by flag (secrets by environment)
 * and its own defaults for the rest, exactly as the separate commands would.
 */
export async function startAllInOne(config: ServerConfig, supervisor: Supervisor): Promise<RunningAllInOne> {
  if (config.replicas > config.dataservers) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --replicas (${config.replicas}) must not exceed --dataservers (${config.dataservers})`);
  }
  checkLegacyOptions(config);
  const root = resolve(config.data);
  prepareDataRoot(root);
  const { secrets, path: secretsPath } = await loadOrCreateSecrets(root);
  const clusterSecret = config.clusterSecret || secrets.UGCFS_CLUSTER_SECRET;
  // The origin holds the origins' credential only: files, never blocks or cluster operations.
  const originSecret = config.originSecret || secrets.UGCFS_ORIGIN_SECRET;
  const adminToken = config.adminToken || secrets.UGCFS_ADMIN_TOKEN;
  const uploadTokenFromFile = config.uploadTokens.length === 0;
  const uploadTokens = uploadTokenFromFile ? secrets.UGCFS_UPLOAD_TOKENS.split(',') : config.uploadTokens;
  // Each role's options as given (those the roles share, host, log level, TLS..., to each).
  const given = (role: keyof typeof ALL_IN_ONE_ROLES) => passedValues(ALL_IN_ONE_ROLES[role], config);
  // A role that fails to start says why on its own stderr; the user's fix is often one of
  // this command's options (a taken port, a data directory in use), so name that instead.
  const started = async <T>(option: string, port: number, run: Promise<T>): Promise<T> => {
    try {
      return await run;
    } catch (err) {
      if (!(err instanceof RoleStartError)) throw err;
      const said = err.stderr.join('\n');
      if (/EADDRINUSE/.test(said)) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option ${option}: ${config.host}:${port} is already in use`);
      if (/is in use by another/.test(said)) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --data: ${root} is in use by another ugcfs process`);
      const own = [...err.stderr].reverse().find((l) => l.startsWith('ugcfs '))?.replace(/^ugcfs [a-z]+: /, '');
      if (err.exit.code === 2 && own) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', own);
      throw err;
    }
  };

  let nsPort = config.nameserverPort;
  const ns = await started('--nameserver-port', nsPort, supervisor.start({
    name: 'nameserver',
    stopOrder: 2,
    command: () => roleCommand('nameserver', NAMESERVER_OPTIONS, { ...given('nameserver'), clusterSecret, originSecret, data: join(root, 'nameserver'), port: nsPort, replicas: config.replicas, adminToken }),
  }));
  nsPort = portOf(ns.url);

  // The data servers and the origin need only the name server: they start together.
  const dataserversServing = Promise.all(Array.from({ length: config.dataservers }, async (_, i) => {
    const id = `ds-${i + 1}`;
    let port = config.dataserverPort === 0 ? 0 : config.dataserverPort + i;
    const ds = await started('--dataserver-port', port, supervisor.start({
      name: `dataserver:${id}`,
      stopOrder: 1,
      command: () => roleCommand('dataserver', DATASERVER_OPTIONS, {
        ...given('dataserver'), clusterSecret, originSecret, nameserver: ns.url, data: join(root, id), id, port, rack: 'local', blockSize: config.blockSize, fsync: config.fsync,
      }),
    }));
    port = portOf(ds.url);
    return { url: ds.url, id };
  }));

  let originPort = config.port;
  const workers = config.originWorkers || Math.min(availableParallelism(), ORIGIN_OPTIONS.workers.max ?? 1);
  const originServing = started('--port', originPort, supervisor.start({
    name: 'origin',
    stopOrder: 0,
    command: () => roleCommand('origin', ORIGIN_OPTIONS, {
      ...given('origin'),
      // the origins' credential only: files, never blocks or cluster operations
      originSecret,
      nameserver: ns.url,
      port: originPort,
      cacheDir: join(root, 'cache'),
      cacheBytes: config.cacheBytes,
      uploadTokens,
      adminToken,
      workers,
    }),
  }));
  const [dataservers, origin] = await Promise.all([dataserversServing, originServing]);
  originPort = portOf(origin.url);
  return { secretsPath, uploadTokenFromFile, nameserver: ns, dataservers, origin: { url: origin.url, workers } };
}

/** What a newcomer needs next, in lines they can paste. */
export function welcome(running: RunningAllInOne, config: ServerConfig): string {
  const o = running.origin.url;
  const auth = `-H "Authorization: Bearer ${running.uploadTokenFromFile ? '$UGCFS_UPLOAD_TOKENS' : '<upload token>'}"`;
  const cacert = config.tlsCa === '' ? '' : ` --cacert ${config.tlsCa}`;
  const nsFlag = `${running.nameserver.url === 'http://127.0.0.1:7000' ? '' : ` --nameserver ${running.nameserver.url}`}${config.tlsCa === '' ? '' : ` --tls-ca ${config.tlsCa}`}`;
  return [
    '',
    `ugcfs is running: origin ${o}, name server ${running.nameserver.url}, ${running.dataservers.length} data servers (${running.dataservers.map((d) => d.url).join(', ')}), data in ${resolve(config.data)}`,
    '',
    `Its credentials are in ${running.secretsPath} (mode 0600). In your shell:`,
    `  set -a; . ${running.secretsPath}; set +a`,
    'Upload an image (answers with its fid and url):',
    `  curl -s${cacert} ${auth} -F file=@photo.jpg ${o}/upload`,
    'Fetch it, a 400x400 variant, and the Taobao-style spelling of a WebP thumbnail:',
    `  curl -s${cacert} -o original.jpg ${o}/<fid>.jpg`,
    `  curl -s${cacert} -o thumb.jpg '${o}/<fid>.jpg?w=400&h=400&fit=cover'`,
    `  curl -s${cacert} -o thumb.webp ${o}/<fid>.jpg_200x200q80.jpg_.webp`,
    'Delete it:',
    `  curl -s${cacert} ${auth} -X DELETE ${o}/<fid>`,
    `Cluster status: npx ugcfs status${nsFlag} (page: ${running.nameserver.url}/, the admin token as password), metrics: ${o}/metrics. Stop with Ctrl-C.`,
    '',
  ].join('\n');
}

const mod: CommandModule = {
  summary: 'run everything on one machine: name server, data servers and origin, each in its own process',
  usage: `ugcfs server [--data DIR] [--port 8080] [--dataservers 3] [--replicas 2] [--origin-workers N] [--legacy-origin URL [--legacy-import]]

Each role runs as a process of its own (\`ugcfs nameserver\`, \`ugcfs dataserver\`, \`ugcfs origin
--workers N\`), restarted when it dies; Ctrl-C or SIGTERM stops them all in order.
Legacy paths the name server has no mapping for are read through --legacy-origin (the old
image server) and, with --legacy-import, copied into the cluster in the background, as with
\`ugcfs origin\`.

options:
${describeOptions(SERVER_OWN_OPTIONS)}

Every other option of \`ugcfs nameserver\`, \`ugcfs dataserver\` and \`ugcfs origin\` is taken
too, by the same flag, config key and environment variable, and passed to that role (see
\`ugcfs <role> --help\`):
${passedFlags().map((p) => `  ${p.to}: ${p.flags.join(' ')}`).join('\n')}`,
  async run(ctx) {
    const { config, positionals } = loadConfig(SERVER_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    // Synchronous: the roles' lines go to the same stdout, and the last line before exit must be out.
    const log = createLogger({ name: 'server', level: config.logLevel, destination: pino.destination({ sync: true }) });
    const supervisor = new Supervisor(log, { env: ctx.env, stdout: ctx.stdout, stderr: ctx.stderr });
    // From the first spawn on: a signal during the start stops what has started.
    supervisor.handleSignals();
    let running: RunningAllInOne;
    try {
      running = await startAllInOne(config, supervisor);
    } catch (err) {
      await supervisor.stop();
      throw err;
    }
    ctx.stdout.write(welcome(running, config) + '\n');
    log.info({ url: running.origin.url, nameserver: running.nameserver.url, dataservers: running.dataservers.map((d) => d.url), originWorkers: running.origin.workers, pids: supervisor.pids() }, 'listening');
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
