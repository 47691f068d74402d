// `--tls`: a throwaway certificate authority and one server certificate for 127.0.0.1 and
// localhost, made with the openssl binary in a section's work directory (it goes with it).
// Every ugcfs role of the run serves HTTPS on that certificate and trusts that CA
// (--tls-cert, --tls-key, --tls-ca; docs/SECURITY.md, "TLS between roles"); the bench's own
// clients trust it through agentFor, and wrk (which checks no certificate) uses its own TLS.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import { agentFor } from '../../src/clients/http-client.ts';

export interface BenchTls {
  /** PEM files: the CA, and the server certificate with its key */
  ca: string;
  cert: string;
  key: string;
  /** the flags every role gets */
  args: string[];
  /** an undici dispatcher trusting the CA (keep-alive, as the roles' own) */
  dispatcher: Dispatcher;
}

/** ECDSA P-256 keys, valid two days: what the handshake costs is what a real P-256 certificate costs. */
export function makeBenchTls(dir: string, openssl = 'openssl'): BenchTls {
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => join(dir, name);
  const run = (args: string[]) => {
    try {
      execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { stderr?: Buffer };
      throw new Error(e.code === 'ENOENT' ? '--tls makes its certificates with openssl, which is missing (apt-get install openssl)' : `openssl ${args[0]}: ${e.stderr?.toString().trim() || e.message}`);
    }
  };
  const key = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2'];
  run(['req', '-x509', ...key, '-keyout', at('ca.key'), '-out', at('ca.pem'), '-subj', '/CN=ugcfs bench CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  // One step: `req -x509 -CA` signs the new key's certificate with the CA (OpenSSL 3).
  writeFileSync(at('server.cnf'), [
    '[req]', 'distinguished_name = dn', 'x509_extensions = ext', '[dn]',
    '[ext]', 'subjectAltName = IP:127.0.0.1, DNS:localhost', 'basicConstraints = CA:FALSE',
    'keyUsage = critical, digitalSignature', 'extendedKeyUsage = serverAuth', '',
  ].join('\n'));
  run(['req', '-x509', ...key, '-CA', at('ca.pem'), '-CAkey', at('ca.key'), '-config', at('server.cnf'),
    '-keyout', at('server.key'), '-out', at('server.pem'), '-subj', '/CN=localhost']);
  const files = { ca: at('ca.pem'), cert: at('server.pem'), key: at('server.key') };
  return { ...files, args: ['--tls-cert', files.cert, '--tls-key', files.key, '--tls-ca', files.ca], dispatcher: agentFor(files.ca) };
}
