// pino loggers for every role. Secrets are redacted by path, so a token can only reach a
// log line by being put into a message string by hand (test/security covers that).
import pino, { type Logger } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-ugcfs-secret"]',
  'req.headers.cookie',
  'config.clusterSecret',
  'config.adminToken',
  'config.uploadTokens',
  'config.signingKeys',
  'config.originSecret',
  '*.clusterSecret',
  '*.originSecret',
  '*.adminToken',
  '*.uploadTokens',
];

/** A URL fit for a log line: any user name and password in it replaced (`https://***@host/`). */
export function withoutCredentials(url: string): string {
  try {
    const u = new URL(url);
    if (u.username === '' && u.password === '') return url;
    u.username = '***';
    u.password = '';
    return u.toString();
  } catch {
    return '[unparsable url]';
  }
}

export interface LogOptions {
  level?: string;
  /** a name shown in every line: nameserver, dataserver:ds-1, origin */
  name: string;
  /** write destination; defaults to stdout */
  destination?: pino.DestinationStream;
}

export function createLogger(opts: LogOptions): Logger {
  return pino(
    {
      name: opts.name,
      level: opts.level ?? 'info',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    opts.destination ?? pino.destination({ sync: false }),
  );
}
