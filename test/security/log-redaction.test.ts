// No credential reaches a log line by the paths the loggers write: configs (every secret
// option redacted) and URLs that carry a user name and password (the legacy origin's).
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, withoutCredentials } from '../../src/base/log.ts';

describe('log redaction', () => {
  it('drops the user name and password from a URL and leaves others as they are', () => {
    expect(withoutCredentials('https://olduser:hunter2-long-password@img.example.com:8443/base/')).toBe('https://***@img.example.com:8443/base/');
    expect(withoutCredentials('http://img.example.com/base')).toBe('http://img.example.com/base');
    expect(withoutCredentials('not a url with secret')).toBe('[unparsable url]');
  });

  it('censors every secret option of a logged config', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => { lines.push(String(chunk)); done(); } });
    const log = createLogger({ name: 't', destination: sink });
    const secrets = { clusterSecret: 'c'.repeat(40), originSecret: 'o'.repeat(40), adminToken: 'a'.repeat(40), uploadTokens: ['u'.repeat(40)], signingKeys: ['k'.repeat(40)] };
    log.info({ config: secrets }, 'started');
    log.info({ peer: { clusterSecret: secrets.clusterSecret, originSecret: secrets.originSecret } }, 'peer');
    await new Promise((r) => setImmediate(r));
    const text = lines.join('');
    expect(text).toContain('started');
    for (const v of [secrets.clusterSecret, secrets.originSecret, secrets.adminToken, secrets.uploadTokens[0]!, secrets.signingKeys[0]!]) expect(text).not.toContain(v);
  });
});
