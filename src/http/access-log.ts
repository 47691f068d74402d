// One log line per answered request when `--access-log` is on (off by default: at tens of
// thousands of requests a second the line costs more than the read). fastify's routes log
// through the onResponse hook in http-server.ts, routes answered ahead of fastify (the data
// server's needle routes, the origin's hit path) through the same RouteMeter
// (src/http/ahead-route.ts), so every request gets the same line whichever path served it:
//   {"msg":"request","reqId":...,"method":"GET","url":"/...","status":200,"ms":0.41,"bytes":20480}
import type { Logger } from '../base/log.ts';

/** `started`: performance.now() when the request arrived. */
export type AccessLog = (method: string, url: string, status: number, started: number, bytes: number | undefined, reqId: string | undefined) => void;

/** The access-log writer for a server, or undefined when it is off (callers skip even the call). */
export function createAccessLog(log: Logger, enabled: boolean): AccessLog | undefined {
  if (!enabled) return undefined;
  return (method, url, status, started, bytes, reqId) => {
    const ms = Math.round((performance.now() - started) * 100) / 100;
    log.info({ reqId, method, url: url.length > 300 ? url.slice(0, 300) + '…' : url, status, ms, bytes }, 'request');
  };
}
