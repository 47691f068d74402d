// startNameserver: the name server role (see nameserver/server.ts for what it holds).
import { mkdirSync } from 'node:fs';
import { assertListenAllowed, listen } from '../src/http-server.ts';
import { createLogger, type Logger } from '../src/log.ts';
import type { RunningServer } from '../src/running-server.ts';
import type { NameserverConfig } from './config.ts';
import { createNameserver, type NameserverInstance } from './server.ts';

export interface NameserverStartOptions {
  log?: Logger;
}

export interface RunningNameserver extends RunningServer {
  instance: NameserverInstance;
}

export async function startNameserver(config: NameserverConfig, opts: NameserverStartOptions = {}): Promise<RunningNameserver> {
  assertListenAllowed(config.host, config.clusterSecret, 'nameserver');
  const log = opts.log ?? createLogger({ name: 'nameserver', level: config.logLevel });
  mkdirSync(config.data, { recursive: true });
  const instance = await createNameserver(config, log);
  let url: string;
  try {
    url = await listen(instance.app, config.host, config.port);
  } catch (err) {
    await instance.close();
    throw err;
  }
  instance.startLoop();
  let closing: Promise<void> | undefined;
  return {
    url,
    instance,
    close: () => (closing ??= instance.close()),
  };
}
