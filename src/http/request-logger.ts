// The logger fastify gives each request (req.log, carrying the request id), made on first
// use. fastify asks for one per request and pino builds a child's bindings at once, redaction
// included: about 2 KB of garbage per request, on every heartbeat a name server takes in,
// though a request logs only when something goes wrong. At 400 beats a second that was a
// twentieth of an 8M-block name server's young-generation garbage.
import type { FastifyBaseLogger } from 'fastify';

type Level = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
type LogArgs = Parameters<FastifyBaseLogger['info']>;
type ChildOptions = Parameters<FastifyBaseLogger['child']>[1];
/** pino's loggers have it; a logger without it is taken to log every level */
const enabled = (log: FastifyBaseLogger, level: string): boolean => (log as { isLevelEnabled?: (l: string) => boolean }).isLevelEnabled?.(level) ?? true;

class RequestLogger {
  private made: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Record<string, unknown>,
    private readonly opts: ChildOptions | undefined,
  ) {}

  private get log(): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings, this.opts));
  }

  /** A line below the level is dropped before the child is made (no per-request level is ever set). */
  private write(level: Level, args: LogArgs): void {
    if (this.made === undefined && this.opts === undefined && !enabled(this.parent, level)) return;
    (this.log[level] as (...a: LogArgs) => void)(...args);
  }

  get level(): string {
    return this.made?.level ?? this.parent.level;
  }
  set level(level: string) {
    this.log.level = level;
  }
  isLevelEnabled(level: string): boolean {
    return enabled(this.made ?? this.parent, level);
  }
  fatal(...args: LogArgs): void {
    this.write('fatal', args);
  }
  error(...args: LogArgs): void {
    this.write('error', args);
  }
  warn(...args: LogArgs): void {
    this.write('warn', args);
  }
  info(...args: LogArgs): void {
    this.write('info', args);
  }
  debug(...args: LogArgs): void {
    this.write('debug', args);
  }
  trace(...args: LogArgs): void {
    this.write('trace', args);
  }
  silent(): void {}
  child(bindings: Record<string, unknown>, opts?: ChildOptions): FastifyBaseLogger {
    return this.log.child(bindings, opts);
  }
}

/** fastify's childLoggerFactory: a request's logger, made when it first logs. */
export function requestLogger(parent: FastifyBaseLogger, bindings: Record<string, unknown>, opts: ChildOptions | undefined): FastifyBaseLogger {
  const options = opts !== undefined && Object.keys(opts).length > 0 ? opts : undefined;
  return new RequestLogger(parent, bindings, options) as unknown as FastifyBaseLogger;
}
