// Crash matrix: under a mixed load (replicated writes and reads through the cluster client,
// uploads, reads and deletes through an origin, a compaction and a rebalance onto a newly
// added data server), a seeded schedule SIGKILLs every role — name server, each data
// server, the origin — at random moments and restarts it. Afterwards every acknowledged
// upload reads back byte-exact, every acknowledged delete stays deleted on every server and
// through the origin, and after `ugcfs verify --repair` `ugcfs verify` is clean. The seed and every kill are logged, so a
// failing run can be replayed with UGCFS_FAULT_SEED. UGCFS_SOAK=1 runs the load for minutes.
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { callJson, callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, NS_ROUTES } from '../../src/wire/protocol.ts';
import { decodeFid } from '../../src/wire/file-id.ts';
import { decodeNeedle, isTombstone } from '../../dataserver/needle.ts';
import { freePort, startCluster, type Cluster } from '../helpers/cluster.ts';
import { start, waitFor, type Proc } from '../helpers/proc.ts';
import { faultSeed, payload, seededRandom, sha, sleep } from './fault-kit.ts';
import { Ledger, operationsRunning, startOperation } from './ledger.ts';

const SOAK = process.env.UGCFS_SOAK === '1';
const LOAD_MS = SOAK ? 10 * 60_000 : 30_000;

describe('crash matrix: SIGKILL of every role under mixed load', () => {
  let cluster: Cluster;
  let origin: Proc;
  let originPort = 0;
  const seed = faultSeed();
  const rnd = seededRandom(seed);
  let ledger: Ledger;
  const viaOrigin = new Set<string>();
  const deletedViaOrigin = new Set<string>();
  const kills: string[] = [];
  const counts = { uploads: 0, originReads: 0, opsStarted: 0 };
  let pngs: Buffer[] = [];
  /** every name server and data server process ever started, for the logs of a failing run */
  const allProcs: Array<[string, Proc]> = [];

  const startOrigin = () =>
    start(['origin', '--nameserver', cluster.nameserver.url, '--port', String(originPort), '--memory-cache-bytes', String(4 * 1024 * 1024)], {
      env: { UGCFS_CLUSTER_SECRET: cluster.secret, UGCFS_UPLOAD_TOKENS: cluster.uploadToken },
    });

  beforeAll(async () => {
    console.log(`crash matrix seed=${seed} (replay with UGCFS_FAULT_SEED=${seed})${SOAK ? ' SOAK' : ''}`);
    cluster = await startCluster({ dataservers: 3, replicas: 2, racks: [''], blockSize: 256 * 1024, deadAfterMs: 1000, repairDelayMs: 500 });
    allProcs.push(['nameserver', cluster.nameserver], ...cluster.dataservers.map((p, i) => [`ds:${i}`, p] as [string, Proc]));
    originPort = await freePort();
    origin = await startOrigin();
    ledger = new Ledger(cluster, rnd);
    pngs = await Promise.all(
      Array.from({ length: 12 }, (_, i) => sharp(payload(seededRandom(seed + i), 24 * 24 * 3), { raw: { width: 24, height: 24, channels: 3 } }).png().toBuffer()),
    );
  }, 120_000);

  afterAll(async () => {
    if (ledger) console.log(`crash matrix: kills=${kills.length} [${kills.join('; ')}] ${JSON.stringify({ ...ledger.counts, ...counts })} live=${ledger.live.size} deleted=${ledger.deleted.size} uncertain=${ledger.uncertain.size}`);
    await origin?.kill();
    await cluster?.stop();
  });

  /** For a failing read: which data servers hold the file right now, and where the name server says it is. */
  async function whoHolds(fid: string): Promise<string> {
    const parts: string[] = [];
    for (const [i, ds] of cluster.dataservers.entries()) {
      const r = await callRaw(ds.url + DS_ROUTES.needle.replace(':fid', fid), { method: 'HEAD', secret: cluster.secret, timeoutMs: 2000 }).catch(() => undefined);
      parts.push(`${cluster.dsIds[i]}=${r?.status ?? 'down'}`);
    }
    const loc = await callJson(cluster.nameserver.url + NS_ROUTES.block.replace(':id', String(decodeFid(fid).block)), { secret: cluster.secret, timeoutMs: 2000 }).catch((e: Error) => e.message);
    return `${parts.join(' ')} location ${JSON.stringify(loc)}`;
  }

  /** Every key in a copy of a block, live or tombstoned (last record wins), read from its raw bytes. */
  async function blockKeys(url: string, block: number): Promise<Map<bigint, 'live' | 'deleted'> | undefined> {
    const raw = await callRaw(`${url}${DS_ROUTES.blockData.replace(':id', String(block))}?from=0`, { secret: cluster.secret, timeoutMs: 30_000 }).catch(() => undefined);
    if (raw?.status !== 200) return undefined; // this server holds no copy of the block (or is down)
    const keys = new Map<bigint, 'live' | 'deleted'>();
    for (let at = 0; at < raw.body.length; ) {
      const n = decodeNeedle(raw.body, at);
      if (typeof n === 'string') break;
      keys.set(n.key, isTombstone(n.flags) ? 'deleted' : 'live');
      at += n.length;
    }
    return keys;
  }

  /** For a failing verify: which keys differ between the copies, and what the load did with them. */
  async function explainDisagreement(report: string): Promise<{ text: string; onlyKnownBug: boolean }> {
    // verify names only the copy it judged damaged; compare it with every copy that exists.
    const blocks = new Set([...report.matchAll(/block (\d+) on \S+: /g)].map((m) => Number(m[1])));
    const fate = new Map<bigint, string>();
    for (const f of ledger.live.keys()) fate.set(decodeFid(f).key, 'acknowledged write');
    for (const f of ledger.deleted) fate.set(decodeFid(f).key, 'acknowledged delete');
    for (const f of ledger.uncertain.keys()) fate.set(decodeFid(f).key, 'delete with no answer');
    const out: string[] = [];
    let onlyKnownBug = blocks.size > 0;
    for (const block of blocks) {
      const found = await Promise.all(cluster.dsIds.map(async (id, i) => ({ id, keys: await blockKeys(cluster.dataservers[i]!.url, block) })));
      const held = found.filter((f): f is { id: string; keys: Map<bigint, 'live' | 'deleted'> } => f.keys !== undefined);
      const copies = held.map((f) => f.keys);
      const ids = held.map((f) => f.id);
      const all = new Set(copies.flatMap((c) => [...c.keys()]));
      for (const k of all) {
        const states = copies.map((c) => c.get(k) ?? 'absent');
        // a tombstone and a compacted-away record are the same to readers and to verify
        if (!states.includes('live') || states.every((x) => x === 'live')) continue;
        const f = fate.get(k) ?? 'never acknowledged (write with no answer)';
        out.push(`  block ${block} key ${k}: ${ids.map((id, i) => `${id}=${states[i]}`).join(' ')} — ${f}`);
        // The two divergences verify --repair settles: partial-delete.test.ts (a delete with no
        // answer reached one copy) and orphan-write.test.ts (a write with no answer stayed on one copy).
        if (f !== 'delete with no answer' && !f.startsWith('never acknowledged')) onlyKnownBug = false;
      }
    }
    if (out.length === 0) onlyKnownBug = false;
    return { text: out.join('\n'), onlyKnownBug };
  }


  const startOp = async (body: Record<string, unknown>) => {
    if (await startOperation(cluster, body)) counts.opsStarted++;
  };

  it('keeps every acknowledged byte and every acknowledged delete', async () => {
    let stop = false;
    const deadline = Date.now() + LOAD_MS;
    const errors = ledger.errors;
    const { live } = ledger;
    const pick = <T,>(xs: T[]) => xs[Math.floor(rnd() * xs.length)]!;
    const loop = async (step: () => Promise<unknown>) => {
      while (!stop) await step();
    };

    const uploader = async () => {
      while (!stop) {
        try {
          const r = await request(`http://127.0.0.1:${originPort}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${cluster.uploadToken}` }, body: pick(pngs), headersTimeout: 20_000, bodyTimeout: 20_000 });
          const text = await r.body.text();
          if (r.statusCode === 201) {
            const f = JSON.parse(text).files[0] as { fid: string; sha256: string };
            live.set(f.fid, f.sha256);
            viaOrigin.add(f.fid);
            counts.uploads++;
          } else if (r.statusCode < 500) {
            errors.push(`upload answered ${r.statusCode}: ${text.slice(0, 200)}`);
          }
        } catch {
          await sleep(100); // origin down: connection refused
        }
      }
    };

    const reader = async () => {
      const fid = await ledger.read(async (f) => void errors.push(`read ${f}: acknowledged file answered NOT_FOUND at ${Date.now()}: ${await whoHolds(f)}`));
      if (fid === undefined) return sleep(50);
      if (rnd() < 0.3) {
        const r = await request(`http://127.0.0.1:${originPort}/${fid}`, { headersTimeout: 20_000, bodyTimeout: 20_000 }).catch(() => undefined);
        if (r) {
          const body = Buffer.from(await r.body.arrayBuffer());
          if (r.statusCode === 200 && live.has(fid) && sha(body) !== live.get(fid)) errors.push(`origin GET ${fid}: wrong bytes`);
          counts.originReads++;
        }
      }
      await sleep(5);
    };

    const originDelete = async (fid: string): Promise<string | false> => {
      const r = await request(`http://127.0.0.1:${originPort}/${fid}`, { method: 'DELETE', headers: { authorization: `Bearer ${cluster.uploadToken}` }, headersTimeout: 20_000 });
      await r.body.dump();
      if (r.statusCode !== 204) return false;
      deletedViaOrigin.add(fid);
      return 'origin';
    };
    const deleter = async () => {
      await sleep(150);
      // through the origin for half of what it uploaded, else through the cluster client
      await ledger.delete((fid) => (viaOrigin.has(fid) && rnd() < 0.5 ? originDelete(fid) : ledger.clientDelete(fid)));
    };

    const operations = async () => {
      await sleep(LOAD_MS * 0.2);
      await startOp({ kind: 'compact', threshold: 0.01 });
      await sleep(LOAD_MS * 0.15);
      const i = await cluster.addDataserver();
      await waitFor('ds-4 alive', async () => (await cluster.status().catch(() => undefined))?.dataservers.some((d) => d.id === cluster.dsIds[i] && d.alive), 20_000).catch(() => undefined);
      await startOp({ kind: 'rebalance' });
      await sleep(LOAD_MS * 0.2);
      await startOp({ kind: 'compact', threshold: 0.01 });
    };

    const killOne = async (role: string) => {
      if (role === 'nameserver') await cluster.killNameserver();
      else if (role === 'origin') await origin.kill();
      else await cluster.killDataserver(Number(role.slice(3)));
    };
    const restartOne = async (role: string) => {
      if (role === 'nameserver') allProcs.push(['nameserver', await cluster.restartNameserver()]);
      else if (role === 'origin') origin = await startOrigin();
      else allProcs.push([role, await cluster.restartDataserver(Number(role.slice(3)))]);
    };
    const killer = async () => {
      // A process start costs seconds on a busy box, so roles fall in rounds: at most one
      // data server per round (two replicas must not both be gone), together with the name
      // server and/or the origin. The first three rounds cover every role; then at random.
      const ds = [0, 1, 2].sort(() => rnd() - 0.5).map((i) => `ds:${i}`);
      const rounds = [[ds[0]!, 'nameserver'], [ds[1]!, 'origin'], [ds[2]!, 'nameserver', 'origin']];
      await sleep(1500);
      for (let n = 0; n < rounds.length || Date.now() < deadline - 3000; n++) {
        let round = rounds[n];
        if (!round) {
          round = [];
          if (rnd() < 0.7) round.push(`ds:${Math.floor(rnd() * cluster.dsIds.length)}`);
          if (rnd() < 0.4) round.push('nameserver');
          if (rnd() < 0.4 || round.length === 0) round.push('origin');
        }
        const t0 = Date.now();
        await Promise.all(round.map(killOne));
        await sleep(200 + rnd() * 1200);
        await Promise.all(round.map(restartOne));
        for (const role of round) kills.push(`${role}@${((t0 - (deadline - LOAD_MS)) / 1000).toFixed(1)}s`);
        await sleep(500 + rnd() * 1500);
      }
    };

    const workers = [loop(() => ledger.write(60_000)), loop(() => ledger.write(60_000)), uploader(), loop(reader), loop(reader), loop(deleter), operations()];
    await killer();
    await sleep(Math.max(0, deadline - Date.now()));
    // keep the load on briefly after the last restart, so the healed cluster is under load too
    await sleep(2000);
    stop = true;
    await Promise.all(workers);
    expect(errors, errors.slice(0, 5).join('\n')).toEqual([]);
    expect(kills.length).toBeGreaterThanOrEqual(7);
    for (const role of ['nameserver', 'origin', 'ds:0', 'ds:1', 'ds:2']) expect(kills.some((k) => k.startsWith(role + '@')), role).toBe(true);

    // Heal: every role up, every block fully replicated, operations finished.
    try {
      await cluster.waitFor((s) => s.dataservers.every((d) => d.alive) && s.underReplicatedBlocks === 0, 'healed cluster', 90_000);
    } catch (err) {
      const st = await cluster.status().catch((e: Error) => e.message);
      // Which blocks: every id up to a little past the highest one a file landed in.
      const top = Math.max(0, ...[...live.keys(), ...ledger.deleted].map((f) => decodeFid(f).block)) + 100;
      const short: string[] = [];
      for (let id = 1; id <= top; id++) {
        const loc = await callJson<{ replicas: unknown[]; state: string }>(cluster.nameserver.url + NS_ROUTES.block.replace(':id', String(id)), { secret: cluster.secret, timeoutMs: 2000 }).catch(() => undefined);
        if (loc && loc.replicas.length < 2) short.push(`${id}:${loc.state}:${JSON.stringify(loc.replicas)}`);
      }
      console.log(`crash matrix: under-replicated blocks: ${short.join(' ')}`);
      const dump = `/tmp/ugcfs-crash-matrix-${seed}.log`;
      writeFileSync(dump, allProcs.map(([role, p]) => p.lines.map((l) => `${role} ${l}`).join('\n')).join('\n') + `\nkills: ${kills.join('; ')}\n`);
      console.log(`crash matrix: cluster did not heal: ${JSON.stringify(st)} (logs in ${dump})`);
      throw err;
    }
    await waitFor('operations finished', async () => (await operationsRunning(cluster)).length === 0, 90_000, 250);

    // Every acknowledged upload byte-exact.
    const lost = await ledger.lost();
    for (const l of lost) console.log(`LOST ${l}`);
    console.log(`crash matrix: ${live.size} acknowledged files checked, bytes lost: ${lost.length === 0 ? 0 : `${lost.length} files`}`);
    expect(lost).toEqual([]);

    // Every acknowledged delete stays deleted: on every data server, via the client and the origin.
    const resurrected = await ledger.resurrected();
    if (resurrected.length > 0) {
      const dump = `/tmp/ugcfs-crash-matrix-${seed}.log`;
      writeFileSync(dump, allProcs.map(([role, p]) => p.lines.map((l) => `${role} ${l}`).join('\n')).join('\n') + `\nkills: ${kills.join('; ')}\n`);
      console.log(`RESURRECTED after an acknowledged delete: ${resurrected.join('; ')} (logs in ${dump})`);
    }
    expect(resurrected).toEqual([]);
    for (const fid of ledger.deleted) {
      await expect(cluster.client.read(fid)).rejects.toMatchObject({ code: 'UGCFS_ERR_NOT_FOUND' });
      // Deletes made around the origin (cluster client, `ugcfs rm`) are not purged from its
      // memory cache: see delete-around-origin.test.ts. Deletes through it must hold.
      if (!deletedViaOrigin.has(fid)) continue;
      const r = await request(`http://127.0.0.1:${originPort}/${fid}`);
      await r.body.dump();
      expect(r.statusCode, `origin still serves deleted ${fid}`).toBe(404);
    }
    await ledger.expectUncertainSettled();

    // Copies may differ by a delete or a write that crashed half-way (partial-delete /
    // orphan-write tests); verify names them, and nothing else may be wrong.
    // verify reads every copy of every block: under a full suite on 2 cores it took over the
    // default 60 s once (another engineer's load on top), so it gets three minutes here.
    const VERIFY = { timeoutMs: 180_000 };
    const v = await cluster.cli(['verify'], VERIFY);
    if (v.code !== 0) {
      const why = await explainDisagreement(v.stdout);
      console.log(`crash matrix: verify found damage; replica differences:\n${why.text}`);
      expect(why.onlyKnownBug, `damage other than half-applied deletes or writes (exit ${v.code}):\n${v.stdout}\n${v.stderr}\n${why.text}`).toBe(true);
    }
    console.log(`crash matrix verify: ${v.stdout.trim().split('\n')[0]}`);
    // verify --repair settles them (deletes win, else the union), and then verify is clean.
    console.log(`crash matrix verify after --repair: ${await ledger.expectVerifyCleanAfterRepair()}`);
  }, LOAD_MS + 400_000);
});
