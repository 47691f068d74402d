// SIGTERM while uploads are streaming in: the process stops accepting, lets the uploads in
// flight finish, closes LevelDB and exits 0 — and every upload that was acknowledged (201)
// reads back byte-exact after a restart on the same data directory.
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { join } from 'node:path';
import { start, tempDir, waitFor, type Proc } from '../helpers/proc.ts';
import { startAllInOne, type AllInOne } from './all-in-one.ts';

const WORKERS = 4;
const ACKED_BEFORE_SIGNAL = 24;

function image(): Promise<Buffer> {
  // Distinct small PNGs of random pixels: each upload is different bytes, so a mix-up cannot pass.
  return sharp(randomBytes(48 * 32 * 3), { raw: { width: 48, height: 32, channels: 3 } }).png().toBuffer();
}

describe('graceful SIGTERM of ugcfs server during uploads', () => {
  const tmp = tempDir('ugcfs-sigterm-');
  let s: AllInOne | undefined;
  afterAll(async () => {
    await s?.stop();
    tmp.cleanup();
  });

  it('loses no acknowledged upload and exits 0', async () => {
    s = await startAllInOne({ dir: tmp.dir, args: ['--fsync=true'] });
    const first = s;
    const acked: Array<{ fid: string; sha256: string }> = [];
    const outcomes = new Map<string, number>();
    let inFlight = 0;
    let inFlightAtSignal = -1;
    let signalled = false;
    const note = (k: string) => outcomes.set(k, (outcomes.get(k) ?? 0) + 1);

    const worker = async () => {
      for (;;) {
        const body = await image();
        inFlight++;
        try {
          const res = await fetch(`${first.origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', ...first.uploadAuth }, body: new Uint8Array(body) });
          const text = await res.text();
          note(String(res.status));
          if (res.status === 201) {
            const f = (JSON.parse(text) as { files: Array<{ fid: string; sha256: string }> }).files[0]!;
            acked.push({ fid: f.fid, sha256: f.sha256 });
          } else {
            // Only "closing" is an acceptable refusal; anything else is a bug.
            expect(signalled, `status ${res.status} before SIGTERM: ${text}`).toBe(true);
            expect(res.status).toBe(503);
          }
        } catch {
          // Connection refused/reset once the server stopped listening.
          expect(signalled).toBe(true);
          note('connection closed');
        } finally {
          inFlight--;
        }
        if (signalled && (outcomes.get('connection closed') ?? 0) + (outcomes.get('503') ?? 0) > 0) return;
      }
    };
    const workers = Array.from({ length: WORKERS }, worker);
    // Signal only while an upload is on the wire (workers also spend time making images).
    await waitFor('uploads acknowledged before the signal, one in flight', () => acked.length >= ACKED_BEFORE_SIGNAL && inFlight > 0, 90_000, 1);
    signalled = true;
    inFlightAtSignal = inFlight;
    const exitCode = await first.proc.kill('SIGTERM');
    await Promise.all(workers);

    expect(exitCode).toBe(0);
    expect(inFlightAtSignal).toBeGreaterThan(0);
    expect(first.proc.lines.some((l) => l.includes('"msg":"shutting down"'))).toBe(true);

    // Same data directory, new process: every acknowledged upload is there, byte-exact (read
    // through one origin process: the workers' shutdown was the first start's).
    s = await startAllInOne({ dir: tmp.dir, args: ['--origin-workers', '1'] });
    const second = s;
    for (const { fid, sha256 } of acked) {
      const bytes = await waitFor(`read back ${fid}`, async () => {
        const res = await fetch(`${second.origin}/${fid}`);
        return res.status === 200 ? Buffer.from(await res.arrayBuffer()) : undefined;
      }, 30_000);
      expect(createHash('sha256').update(bytes).digest('hex'), fid).toBe(sha256);
    }
    expect(acked.length).toBeGreaterThanOrEqual(ACKED_BEFORE_SIGNAL);
    console.log(`acknowledged ${acked.length}, in flight at SIGTERM ${inFlightAtSignal}, outcomes ${JSON.stringify(Object.fromEntries(outcomes))}`);
  }, 240_000);
});

describe('graceful SIGTERM of each separately started role', () => {
  const tmp = tempDir('ugcfs-sigterm-roles-');
  const procs: Proc[] = [];
  afterAll(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    tmp.cleanup();
  });

  it('name server, data server and origin each exit 0 after closing', async () => {
    const ns = await start(['nameserver', '--data', join(tmp.dir, 'ns'), '--port', '0', '--heartbeat-ms', '200']);
    procs.push(ns);
    const ds = await start(['dataserver', '--data', join(tmp.dir, 'ds'), '--port', '0', '--nameserver', ns.url, '--heartbeat-ms', '200', '--fsync=false']);
    procs.push(ds);
    const origin = await start(['origin', '--nameserver', ns.url, '--port', '0']);
    procs.push(origin);
    for (const p of [origin, ds, ns]) {
      expect((await fetch(`${p.url}/healthz`)).status).toBe(200);
      expect(await p.kill('SIGTERM'), p.args[0]).toBe(0);
      expect(p.lines.some((l) => l.includes('"msg":"shutting down"')), p.args[0]).toBe(true);
    }
  }, 120_000);
});
