// req.log is made on first use (src/http/request-logger.ts). What a route logs through it still
// carries the request id; a line below the level is dropped without making the child; a
// failed request's line (logged through req.log by the error handler) has its request id too.
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { UgcfsError } from '../../src/base/errors.ts';
import { createHttpServer } from '../../src/http/http-server.ts';
import { requestLogger } from '../../src/http/request-logger.ts';

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const out = new Writable({ write: (chunk, _enc, done) => (lines.push(...String(chunk).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)), done()) });
  return { lines, log: pino({ level, base: null }, out) };
}

describe('the request logger', () => {
  it('logs with the request id, through routes and the error handler', async () => {
    const { lines, log } = capture('info');
    const { app } = createHttpServer({ role: 'test', log });
    app.get('/hello', { config: { auth: 'public' } }, async (req) => {
      req.log.debug('not at info');
      req.log.info({ n: 1 }, 'hello');
      return { ok: true };
    });
    app.get('/broken', { config: { auth: 'public' } }, async () => {
      throw new UgcfsError('UGCFS_ERR_INTERNAL', 'boom');
    });
    await app.ready();
    closers.push(() => app.close());
    expect((await app.inject({ url: '/hello', headers: { 'x-request-id': 'req-abc' } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/broken', headers: { 'x-request-id': 'req-def' } })).statusCode).toBe(500);
    await new Promise((r) => setImmediate(r));
    const hello = lines.filter((l) => l.msg === 'hello');
    expect(hello).toEqual([expect.objectContaining({ n: 1, reqId: 'req-abc', level: 30 })]);
    expect(lines.some((l) => l.msg === 'not at info')).toBe(false);
    expect(lines.find((l) => l.msg === 'request failed')).toMatchObject({ reqId: 'req-def', code: 'UGCFS_ERR_INTERNAL' });
  });

  it('makes the child only when a line is written at an enabled level', () => {
    let made = 0;
    const { lines, log } = capture('info');
    const parent = Object.assign(Object.create(log) as typeof log, { child: (b: Record<string, unknown>, o?: object) => (made++, log.child(b, o)) });
    const child = requestLogger(parent, { reqId: 'r1' }, {});
    child.debug('dropped');
    child.trace('dropped');
    expect(made).toBe(0);
    expect(child.level).toBe('info');
    child.warn('kept');
    child.error('kept too');
    expect(made).toBe(1);
    expect(lines.map((l) => [l.msg, l.reqId])).toEqual([['kept', 'r1'], ['kept too', 'r1']]);
  });
});
