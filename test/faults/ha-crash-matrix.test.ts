// Crash matrix of a name-server group: under a mixed load (replicated writes, reads and
// deletes through the cluster client, uploads through an origin), a seeded schedule SIGKILLs
// the leading name server, the standby, an etcd member, each data server and the origin,
// and restarts each. Afterwards every acknowledged write reads back byte-exact, every
// acknowledged delete stays deleted on every server, no fid was issued twice, and after
// `ugcfs verify --repair` `ugcfs verify` is clean. Replay a failing run with UGCFS_FAULT_SEED.
import sharp from 'sharp';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etcdUsable } from '../helpers/etcd.ts';
import { startHaCluster, type HaCluster } from '../helpers/ha-cluster.ts';
import { faultSeed, payload, seededRandom, sleep } from './fault-kit.ts';
import { Ledger } from './ledger.ts';

const LOAD_MS = process.env.UGCFS_SOAK === '1' ? 10 * 60_000 : 40_000;

describe.skipIf(etcdUsable())('crash matrix of a name-server group: SIGKILL the leader, an etcd member and every other role', () => {
  let ha: HaCluster;
  const seed = faultSeed();
  const rnd = seededRandom(seed);
  let ledger: Ledger;
  const kills: string[] = [];
  /** every fid ever acknowledged, to catch one issued twice */
  const issued = new Set<string>();
  const issuedTwice: string[] = [];
  let pngs: Buffer[] = [];

  beforeAll(async () => {
    console.log(`ha crash matrix seed=${seed} (replay with UGCFS_FAULT_SEED=${seed})`);
    ha = await startHaCluster({ nameservers: 2, dataservers: 3, origin: true, leaseMs: 2000, blockSize: 256 * 1024, originArgs: ['--memory-cache-bytes', String(4 * 1024 * 1024)] });
    ledger = new Ledger(ha, rnd);
    pngs = await Promise.all(Array.from({ length: 12 }, (_, i) => sharp(payload(seededRandom(seed + i), 24 * 24 * 3), { raw: { width: 24, height: 24, channels: 3 } }).png().toBuffer()));
  }, 180_000);

  afterAll(async () => {
    if (ledger) console.log(`ha crash matrix: kills=${kills.length} [${kills.join('; ')}] ${JSON.stringify(ledger.counts)} live=${ledger.live.size} deleted=${ledger.deleted.size} uncertain=${ledger.uncertain.size}`);
    await ha?.stop();
  });

  const note = (fid: string) => {
    if (issued.has(fid)) issuedTwice.push(fid);
    issued.add(fid);
  };

  it('keeps every acknowledged byte and delete, and never issues a fid twice', async () => {
    let stop = false;
    const loop = async (step: () => Promise<unknown>) => {
      while (!stop) await step();
    };
    const writer = async () => {
      const fid = await ledger.write(4000);
      if (fid !== undefined) note(fid);
    };
    const uploader = async () => {
      const url = ha.origin?.url;
      try {
        const r = await request(`${url}/upload`, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${ha.uploadToken}` }, body: pngs[Math.floor(rnd() * pngs.length)]!, headersTimeout: 20_000, bodyTimeout: 20_000 });
        const text = await r.body.text();
        if (r.statusCode === 201) {
          const f = JSON.parse(text).files[0] as { fid: string; sha256: string };
          note(f.fid);
          ledger.live.set(f.fid, f.sha256);
        } else if (r.statusCode < 500) ledger.errors.push(`upload answered ${r.statusCode}: ${text.slice(0, 200)}`);
        else await sleep(50);
      } catch {
        await sleep(100); // the origin is down
      }
    };
    const reader = async () => {
      const fid = await ledger.read(async (f) => void ledger.errors.push(`read ${f}: acknowledged file answered NOT_FOUND`));
      await sleep(fid === undefined ? 50 : 5);
    };
    const deleter = async () => {
      await sleep(200);
      await ledger.delete(ledger.clientDelete);
    };

    // Every kind of kill once, in a seeded order, then more at random; each victim restarts.
    const kinds = ['leader', 'standby', 'etcd', 'ds', 'origin'];
    const order = [...kinds].sort(() => rnd() - 0.5);
    const killer = async () => {
      const until = Date.now() + LOAD_MS;
      for (let n = 0; Date.now() < until || n < kinds.length; n++) {
        await sleep(1000 + rnd() * 2000);
        const kind = n < order.length ? order[n]! : kinds[Math.floor(rnd() * kinds.length)]!;
        const at = Date.now();
        if (kind === 'leader' || kind === 'standby') {
          const li = await ha.leaderIndex(30_000);
          const i = kind === 'leader' ? li : 1 - li;
          await ha.nameservers[i]!.kill('SIGKILL');
          kills.push(`${kind} ns-${i}@${at}`);
          await sleep(500 + rnd() * 2500);
          await ha.restartNameserver(i);
        } else if (kind === 'etcd') {
          const m = ha.etcd.members[Math.floor(rnd() * ha.etcd.members.length)]!;
          await m.kill();
          kills.push(`etcd ${m.name}@${at}`);
          await sleep(500 + rnd() * 2500);
          await m.restart();
        } else if (kind === 'ds') {
          const i = Math.floor(rnd() * ha.dataservers.length);
          await ha.dataservers[i]!.kill('SIGKILL');
          kills.push(`ds-${i + 1}@${at}`);
          await sleep(500 + rnd() * 2500);
          await ha.restartDataserver(i);
        } else {
          await ha.origin!.kill('SIGKILL');
          kills.push(`origin@${at}`);
          await sleep(500 + rnd() * 1500);
          await ha.restartOrigin();
        }
      }
    };

    const loops = [loop(writer), loop(writer), loop(uploader), loop(reader), loop(deleter)];
    try {
      await killer();
    } finally {
      stop = true;
      await Promise.all(loops);
    }

    // Settle: a leader, every data server back, then check everything.
    await ha.leaderIndex(30_000);
    expect(ledger.errors).toEqual([]);
    expect(issuedTwice).toEqual([]);
    expect(await ledger.lost()).toEqual([]);
    expect(await ledger.resurrected()).toEqual([]);
    await ledger.expectUncertainSettled();
    const verify = await ledger.expectVerifyCleanAfterRepair();
    console.log(`ha crash matrix: ${verify}`);
    expect(kills.some((k) => k.startsWith('leader'))).toBe(true);
    expect(kills.some((k) => k.startsWith('etcd'))).toBe(true);
  }, 900_000);
});
