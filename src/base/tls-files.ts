// The PEM files of --tls-cert, --tls-key and --tls-ca (docs/SECURITY.md, "TLS between
// roles"), read once at start. A file that is missing, unreadable or not what its option
// names is bad usage (exit 2) with one line naming the option, not a stack from deep in the
// TLS layer on the first connection.
import { readFileSync } from 'node:fs';
import * as tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { UgcfsError } from './errors.ts';
import { flagName } from './config.ts';

export interface ServerTlsFiles {
  cert: Buffer;
  key: Buffer;
}

function bad(message: string): UgcfsError {
  return new UgcfsError('UGCFS_ERR_BAD_USAGE', message);
}

function readOption(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw bad(`option ${flagName(key)}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** OpenSSL's messages are one line already; the reason alone is what an operator can act on. */
function reason(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0]!.replace(/^error:[0-9A-F]+:/, '');
}

/** The server's certificate and key (--tls-cert, --tls-key: both or neither); undefined serves plain HTTP. */
export function readServerTls(c: { tlsCert: string; tlsKey: string }): ServerTlsFiles | undefined {
  if (c.tlsCert === '' && c.tlsKey === '') return undefined;
  if (c.tlsCert === '' || c.tlsKey === '') throw bad('options --tls-cert and --tls-key go together: give both or neither');
  const cert = readOption('tlsCert', c.tlsCert);
  const key = readOption('tlsKey', c.tlsKey);
  try {
    // What https.createServer would throw later, as a stack: a bad PEM, a key of another certificate.
    tls.createSecureContext({ cert, key });
  } catch (err) {
    throw bad(`options --tls-cert ${c.tlsCert} and --tls-key ${c.tlsKey} are not a usable certificate and key: ${reason(err)}`);
  }
  return { cert, key };
}

/**
 * The CAs a client trusts with --tls-ca: Node's default ones and the bundle's certificates
 * (undici's `connect.ca` replaces the defaults, so they are listed again).
 */
export function readTrustedCas(path: string): string[] {
  const pem = readOption('tlsCa', path).toString('utf8');
  const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw bad(`option --tls-ca: ${path} holds no PEM certificate`);
  for (const c of certs) {
    try {
      new X509Certificate(c);
    } catch (err) {
      throw bad(`option --tls-ca: ${path} holds a certificate that does not parse: ${reason(err)}`);
    }
  }
  // getCACertificates (Node 22.15+; a namespace read, as Node 20 lacks the export) includes
  // NODE_EXTRA_CA_CERTS; Node 20 has the bundled list only.
  const defaults = typeof tls.getCACertificates === 'function' ? tls.getCACertificates('default') : tls.rootCertificates;
  return [...defaults, ...certs];
}
