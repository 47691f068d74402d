// What the edge purge tests ask of a real CDN edge (Varnish, nginx): that a URL is cached
// (a MISS that reaches an origin, then a HIT with the same bytes), and later that the edge
// has forgotten a deleted file's URLs (it answers 404, having asked an origin). Paths are
// sent exactly as given, escapes included, as a browser would send them.
import { request } from 'node:http';
import { expect } from 'vitest';
import { waitFor } from './proc.ts';

/**
 * One request (GET unless told) with the path as written: status, headers, body. `from`
 * sends it from another loopback address (127.0.0.2: a client the edge's purge ACL does not list).
 */
export function edgeGet(base: string, path: string, o: { method?: string; headers?: Record<string, string>; from?: string } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: o.method ?? 'GET', headers: o.headers, ...(o.from ? { localAddress: o.from, agent: false } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Fetches every path through the edge twice: a MISS that reaches an origin, then a HIT. */
export async function warmEdge(base: string, paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    const first = await edgeGet(base, p);
    expect([first.status, first.headers['x-edge-cache']], p).toEqual([200, 'MISS']);
    const again = await edgeGet(base, p);
    expect([again.status, again.headers['x-edge-cache']], p).toEqual([200, 'HIT']);
    expect(again.body.equals(first.body), p).toBe(true);
  }
}

/** Waits until the edge answers 404 for every path; returns the ms it took. */
export async function edgeForgot(base: string, paths: readonly string[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  await waitFor(`the edge to forget ${paths.join(' ')}`, async () => {
    for (const p of paths) if ((await edgeGet(base, p)).status !== 404) return false;
    return true;
  }, timeoutMs, 100);
  return Date.now() - started;
}
