// `ugcfs server` (what `npm start` runs): the one-machine cluster in one process — a name
// server, N data servers and an origin on loopback — started through the same start*
// functions the separate role commands use, so what a newcomer tries is what operators run.
import { accessSync, constants, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { describeOptions, loadConfig, opt, type ConfigOf } from '../../src/base/config.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import { onShutdown } from '../../src/http/http-server.ts';
import { createLogger, type Logger } from '../../src/base/log.ts';
import { COMMON_SERVER_OPTIONS, requestLimitsOf, tlsOf } from '../../src/base/role-options.ts';
import type { RunningServer } from '../../src/http/running-server.ts';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import { startNameserver } from '../../nameserver/main.ts';
import { DATASERVER_OPTIONS } from '../../dataserver/config.ts';
import { startDataserver } from '../../dataserver/main.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { checkLegacyOptions } from '../../origin/legacy-read-through.ts';
import { startOrigin } from '../../origin/main.ts';
import type { CommandModule } from '../command.ts';
import { loadOrCreateSecrets } from '../secrets-env.ts';

export const SERVER_OPTIONS = {
  ...COMMON_SERVER_OPTIONS,
  // Given or not, the one-machine cluster has one: <data>/secrets.env supplies what is not given.
  clusterSecret: { ...COMMON_SERVER_OPTIONS.clusterSecret, required: false, describe: 'shared secret every internal route asks for (at least 32 characters; default: from <data>/secrets.env, made on the first start)' },
  data: opt.string('./data', 'directory for all state: nameserver/, ds-1/..., cache/ (created if missing)', { env: 'UGCFS_DATA' }),
  port: opt.int(8080, 'origin port (0 picks a free one)', { env: 'UGCFS_ORIGIN_PORT', min: 0, max: 65535 }),
  nameserverPort: opt.int(7000, 'name server port (0 picks a free one)', { env: 'UGCFS_NAMESERVER_PORT', min: 0, max: 65535 }),
  dataserverPort: opt.int(7001, 'first data server port; the others count up from it (0: free ports)', { env: 'UGCFS_DATASERVER_PORT', min: 0, max: 65535 }),
  dataservers: opt.int(3, 'data servers to run', { min: 1, max: 32 }),
  replicas: opt.int(2, 'copies of every block (at most --dataservers)', { min: 1, max: 8 }),
  blockSize: opt.int(DATASERVER_OPTIONS.blockSize.default, 'block file size at which a block is sealed (accepts 64M etc.)', { min: 4096, max: 2 ** 40 }),
  fsync: opt.bool(true, 'fdatasync block files before acknowledging writes', { env: 'UGCFS_FSYNC' }),
  cacheBytes: opt.int(256 * 1024 * 1024, 'size bound of the origin\'s disk cache of variants under <data>/cache', { min: 0 }),
  uploadTokens: opt.list([], 'bearer tokens allowed to upload (default: the one in <data>/secrets.env)', { env: 'UGCFS_UPLOAD_TOKENS', secret: true }),
  adminToken: opt.string('', 'token for admin calls and deleting any file (default: from <data>/secrets.env)', { env: 'UGCFS_ADMIN_TOKEN', secret: true }),
  // The origin's own options, passed to it as they are (docs/MIGRATION.md).
  legacyOrigin: ORIGIN_OPTIONS.legacyOrigin,
  legacyImport: ORIGIN_OPTIONS.legacyImport,
};

export type ServerConfig = ConfigOf<typeof SERVER_OPTIONS>;

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

export interface RunningAllInOne {
  /** <data>/secrets.env, where the credentials not given by flag or environment come from */
  secretsPath: string;
  /** the upload token came from secrets.env (the welcome lines can name its variable) */
  uploadTokenFromFile: boolean;
  nameserver: RunningServer;
  dataservers: Array<RunningServer & { id: string }>;
  origin: RunningServer;
  /** origin first (finish uploads in flight), then data servers, then the name server */
  closers: Array<() => Promise<void>>;
}

/**
 * Starts every role in this process. Each role's config goes through its own table and
 * loadConfig, so the defaults and validation are exactly those of the separate commands.
 */
export async function startAllInOne(config: ServerConfig, logFor: (name: string) => Logger): Promise<RunningAllInOne> {
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
  // The roles get only their own settings: environment meant for a single-role process
  // (UGCFS_PORT, UGCFS_NAMESERVER, UGCFS_RACK...) must not leak into the embedded roles.
  const shared = { host: config.host, clusterSecret, originSecret, logLevel: config.logLevel, ...requestLimitsOf(config), ...tlsOf(config) };
  const started: Array<() => Promise<void>> = [];
  // A taken port is the user's to fix: name the option instead of a bare EADDRINUSE.
  // So is a data directory another process holds open (LevelDB's lock).
  const portTaken = (option: string, port: number) => (err: unknown): never => {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option ${option}: ${config.host}:${port} is already in use`);
    }
    const e = err as { code?: string; cause?: { code?: string }; message?: string };
    if ((e.code === 'LEVEL_DATABASE_NOT_OPEN' && e.cause?.code === 'LEVEL_LOCKED') || /is in use by another/.test(e.message ?? '')) {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --data: ${root} is in use by another ugcfs process`);
    }
    throw err;
  };
  const stopStarted = async () => {
    for (const c of started.reverse()) await c().catch(() => undefined);
  };
  try {
    const ns = await startNameserver(
      loadConfig(NAMESERVER_OPTIONS, {
        overrides: { ...shared, data: join(root, 'nameserver'), port: config.nameserverPort, replicas: config.replicas, adminToken },
      }).config,
      { log: logFor('nameserver') },
    ).catch(portTaken('--nameserver-port', config.nameserverPort));
    started.push(() => ns.close());
    const dataservers: RunningAllInOne['dataservers'] = [];
    for (let i = 0; i < config.dataservers; i++) {
      const id = `ds-${i + 1}`;
      const ds = await startDataserver(
        loadConfig(DATASERVER_OPTIONS, {
          overrides: {
            ...shared,
            nameserver: ns.url,
            data: join(root, id),
            id,
            port: config.dataserverPort === 0 ? 0 : config.dataserverPort + i,
            rack: 'local',
            blockSize: config.blockSize,
            fsync: config.fsync,
          },
        }).config,
        { log: logFor(`dataserver:${id}`) },
      ).catch(portTaken('--dataserver-port', config.dataserverPort + i));
      started.push(() => ds.close());
      dataservers.push(ds);
    }
    const origin = await startOrigin(
      loadConfig(ORIGIN_OPTIONS, {
        overrides: {
          ...shared,
          clusterSecret: '',
          nameserver: ns.url,
          port: config.port,
          cacheDir: join(root, 'cache'),
          cacheBytes: config.cacheBytes,
          uploadTokens,
          adminToken,
          legacyOrigin: config.legacyOrigin,
          legacyImport: config.legacyImport,
        },
      }).config,
      { log: logFor('origin') },
    ).catch(portTaken('--port', config.port));
    return {
      secretsPath,
      uploadTokenFromFile,
      nameserver: ns,
      dataservers,
      origin,
      closers: [() => origin.close(), ...dataservers.map((d) => () => d.close()), () => ns.close()],
    };
  } catch (err) {
    await stopStarted();
    throw err;
  }
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
  summary: 'run everything on one machine: name server, data servers and origin in one process',
  usage: `ugcfs server [--data DIR] [--port 8080] [--dataservers 3] [--replicas 2] [--legacy-origin URL [--legacy-import]]

Legacy paths the name server has no mapping for are read through --legacy-origin (the old
image server) and, with --legacy-import, copied into the cluster in the background, as with
\`ugcfs origin\`.

options:
${describeOptions(SERVER_OPTIONS)}`,
  async run(ctx) {
    const { config, positionals } = loadConfig(SERVER_OPTIONS, { argv: ctx.argv, env: ctx.env });
    if (positionals.length > 0) throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `unexpected argument ${positionals[0]}`);
    // One destination for every role's logger, so the flush at shutdown covers them all.
    const destination = pino.destination({ sync: false });
    const log = createLogger({ name: 'server', level: config.logLevel, destination });
    const running = await startAllInOne(config, (name) => createLogger({ name, level: config.logLevel, destination }));
    onShutdown(log, running.closers);
    ctx.stdout.write(welcome(running, config) + '\n');
    log.info({ url: running.origin.url, nameserver: running.nameserver.url, dataservers: running.dataservers.map((d) => d.url) }, 'listening');
    return 'serving';
  },
};
export const { summary, usage, run } = mod;
