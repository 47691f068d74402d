// startNameserver: the name server role (see nameserver/server.ts for what it holds).
import { mkdirSync } from 'node:fs';
import { UgcfsError } from '../src/base/errors.ts';
import { listen } from '../src/http/http-server.ts';
import { createLogger, type Logger } from '../src/base/log.ts';
import type { RunningServer } from '../src/http/running-server.ts';
import type { NameserverConfig } from './config.ts';
import { createNameserver, type NameserverInstance } from './server.ts';

export interface NameserverStartOptions {
  log?: Logger;
}

export interface RunningNameserver extends RunningServer {
  instance: NameserverInstance;
}

export async function startNameserver(config: NameserverConfig, opts: NameserverStartOptions = {}): Promise<RunningNameserver> {
  const log = opts.log ?? createLogger({ name: 'nameserver', level: config.logLevel });
  try {
    if (config.data !== '') mkdirSync(config.data, { recursive: true });
  } catch (err) {
    // An unusable --data is bad usage (exit 2), like the data server's.
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --data: ${config.data} is not a writable directory (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let instance: NameserverInstance;
  try {
    instance = await createNameserver(config, log);
  } catch (err) {
    const e = err as { code?: string; cause?: { code?: string } };
    if (e.code === 'LEVEL_DATABASE_NOT_OPEN' && e.cause?.code === 'LEVEL_LOCKED') {
      throw new UgcfsError('UGCFS_ERR_BAD_USAGE', `option --data: ${config.data} is in use by another name server`);
    }
    throw err;
  }
  let url: string;
  try {
    url = await listen(instance.app, config.host, config.port);
  } catch (err) {
    await instance.close();
    throw err;
  }
  try {
    await instance.start(config.advertiseUrl || url);
  } catch (err) {
    await instance.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    url,
    instance,
    close: () => (closing ??= instance.close()),
  };
}
