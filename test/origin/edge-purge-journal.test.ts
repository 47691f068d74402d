// The edge purge journal (origin/purge-journal.ts): its bytes are pinned; a torn last append
// and a damaged line are skipped, another version refuses to start, old purges expire; a
// purge is on disk when deleted() resolves and is sent after a new purger opens the journal;
// compaction keeps the file within twice what is pending; a worker no longer run is taken
// over by worker 0. The SIGKILL of a whole origin before a real edge is in
// edge-purge-restart.test.ts.
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/base/log.ts';
import { createMetrics } from '../../src/base/metrics.ts';
import { EdgeClient } from '../../src/clients/edge-client.ts';
import { EdgePurger, purgeFilePaths } from '../../origin/edge-purge.ts';
import { COMPACT_SLACK, decodeJournal, encodeRecord, JOURNAL_HEADER, MAX_AGE_MS, PurgeJournal } from '../../origin/purge-journal.ts';
import { decodeServedSnapshot, encodeServedSnapshot, loadServed, saveServed } from '../../origin/purge-url-snapshot.ts';
import { ServedUrls } from '../../origin/served-urls.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';

const log = createLogger({ name: 'test', level: 'silent' });
const t = tempDir('ugcfs-purge-journal-');
afterAll(() => t.cleanup());

const GOLDEN =
  'ugcfs-edge-purges 1\n' +
  '30002add {"q":1,"fid":"3,01637037d6","t":1700000000000,"urls":["/3,01637037d6.jpg?w=64"],"keys":["3,01637037d6"]}\n' +
  '5372169a {"d":1,"edge":"http://127.0.0.1:6081"}\n';
const JOB = { id: 1, fid: '3,01637037d6', since: 1700000000000, urls: ['/3,01637037d6.jpg?w=64'], keys: ['3,01637037d6'] };

let n = 0;
const fresh = () => {
  const dir = join(t.dir, `d${++n}`);
  mkdirSync(dir);
  return dir;
};

describe('the journal file, version 1', () => {
  it('has the golden bytes of the layout comment', () => {
    expect(JOURNAL_HEADER + encodeRecord({ kind: 'queued', job: JOB }) + encodeRecord({ kind: 'done', id: 1, edge: 'http://127.0.0.1:6081' })).toBe(GOLDEN);
    const d = decodeJournal(Buffer.from(GOLDEN), 'x');
    expect(d).toEqual({ records: [{ kind: 'queued', job: JOB }, { kind: 'done', id: 1, edge: 'http://127.0.0.1:6081' }], damaged: 0, tornBytes: 0 });
  });

  it('skips a torn last append and a damaged line, and opens compacted without them', async () => {
    const lines = GOLDEN.split('\n');
    const damaged = lines[1]!.replace('w=64', 'w=65');
    const second = encodeRecord({ kind: 'queued', job: { ...JOB, id: 2, fid: '4,aa', since: Date.now() } });
    const torn = encodeRecord({ kind: 'queued', job: { ...JOB, id: 3, fid: '5,bb', since: Date.now() } }).slice(0, 40);
    const text = `${JOURNAL_HEADER}${damaged}\n${second}${torn}`;
    const d = decodeJournal(Buffer.from(text), 'x');
    expect(d.damaged).toBe(1);
    expect(d.tornBytes).toBe(40);
    expect(d.records.map((r) => (r.kind === 'queued' ? r.job.fid : r.id))).toEqual(['4,aa']);
    const dir = fresh();
    const path = join(dir, 'j');
    writeFileSync(path, text);
    const { journal, pending } = await PurgeJournal.open(path, ['e1', 'e2'], log);
    expect(pending.map((p) => [p.job.fid, p.edges])).toEqual([['4,aa', ['e1', 'e2']]]);
    await journal.close();
    // rewritten: header and the one pending purge, nothing of the torn tail
    expect(readFileSync(path, 'utf8')).toBe(JOURNAL_HEADER + encodeRecord({ kind: 'queued', job: { ...JOB, id: 1, fid: '4,aa', since: (pending[0]!.job.since) } }));
  });

  it('refuses another version, and drops purges older than the age bound', async () => {
    expect(() => decodeJournal(Buffer.from('ugcfs-edge-purges 2\n'), 'x')).toThrow(/version 1 only/);
    const dir = fresh();
    const path = join(dir, 'j');
    writeFileSync(path, 'ugcfs-edge-purges 2\n');
    await expect(PurgeJournal.open(path, ['e'], log)).rejects.toMatchObject({ code: 'UGCFS_ERR_BAD_USAGE' });
    const now = Date.now();
    writeFileSync(path, JOURNAL_HEADER + encodeRecord({ kind: 'queued', job: { ...JOB, since: now - MAX_AGE_MS - 1000 } }) + encodeRecord({ kind: 'queued', job: { ...JOB, id: 2, fid: 'young', since: now - 1000 } }));
    const { journal, pending } = await PurgeJournal.open(path, ['e'], log);
    expect(pending.map((p) => p.job.fid)).toEqual(['young']);
    await journal.close();
  });

  it('forgets a purge once every edge confirmed it, and stays within twice what is pending', async () => {
    const path = join(fresh(), 'j');
    const { journal } = await PurgeJournal.open(path, ['a', 'b'], log);
    let peak = 0;
    const urls = Array.from({ length: 8 }, (_, i) => `/file-with-a-long-name-${i}.jpg?w=${i}`);
    for (let i = 0; i < 20_000; i++) {
      const q = journal.queue({ fid: `f${i}`, since: Date.now(), urls, keys: [`f${i}`] })!;
      journal.done(q.id, 'a');
      // one purge in a hundred stays owed to edge b
      if (i % 100 !== 0) journal.done(q.id, 'b');
      if (i % 500 === 0) {
        await q.durable;
        peak = Math.max(peak, journal.health().edgePurgeJournalBytes);
      }
    }
    await journal.close();
    const size = readFileSync(path).length;
    // about 6 MB went through the file; it was compacted down as it went
    expect(peak).toBeLessThan(2 * 200 * 700 + COMPACT_SLACK + 64 * 1024);
    const { journal: again, pending } = await PurgeJournal.open(path, ['a', 'b'], log);
    expect(pending).toHaveLength(200);
    expect(pending.every((p) => p.edges.join() === 'b')).toBe(true);
    expect(size).toBeGreaterThan(0);
    await again.close();
  });
});

describe('an EdgePurger with a journal', () => {
  let edge: Server;
  let edgeUrl: string;
  let up = false;
  const purged: string[] = [];

  beforeAll(async () => {
    // a by-key purge endpoint that can be down (answers 503) or up
    edge = createServer((req, res) => {
      if (!up) return void res.writeHead(503).end();
      purged.push(...String(req.headers['xkey-purge'] ?? '').split(' '));
      res.writeHead(200, { 'x-edge-purge': 'xkey' }).end();
    });
    await new Promise<void>((r) => edge.listen(0, '127.0.0.1', r));
    edgeUrl = `http://127.0.0.1:${(edge.address() as { port: number }).port}`;
  });
  afterAll(() => edge?.close());

  const purger = () =>
    new EdgePurger({ edges: [new EdgeClient(edgeUrl, '')], webhook: undefined, served: new ServedUrls(100), owns: () => true, maxPending: 100, metrics: createMetrics('origin').metrics, log });

  it('has the purge on disk when deleted() resolves, and sends it from a new purger on the same journal', async () => {
    const path = join(fresh(), 'edge-purges-0.journal');
    const first = purger();
    expect(await first.openJournal(path)).toBe(0);
    await first.deleted(['7,0badf00d']);
    expect(readFileSync(path, 'utf8')).toContain('"fid":"7,0badf00d"');
    // the edge is down: the purge stays pending; this purger goes away without a word
    await first.close();
    up = true;
    const second = purger();
    expect(await second.openJournal(path)).toBe(1);
    await waitFor('the replayed purge', () => purged.includes('7,0badf00d'));
    await waitFor('the edge confirmation in the journal', () => readFileSync(path, 'utf8').includes('"d":1'));
    await second.close();
    const third = purger();
    expect(await third.openJournal(path)).toBe(0);
    await third.close();
  });

  it("worker 0 takes over the journal of a worker no longer run", async () => {
    const dir = fresh();
    up = false;
    const w1 = await purgeFilePaths(join(dir, 'worker-1'), 1, 2);
    expect(w1).toEqual({ journal: join(dir, 'edge-purges-1.journal'), served: join(dir, 'served-urls-1'), adopt: { journal: [], served: [] } });
    const gone = purger();
    await gone.openJournal(w1.journal);
    await gone.deleted(['9,cafe']);
    await gone.close();
    // --workers 2 -> 1
    const w0 = await purgeFilePaths(dir, 0, 1);
    expect(w0.adopt.journal).toEqual([w1.journal]);
    up = true;
    const zero = purger();
    expect(await zero.openJournal(w0.journal, w0.adopt.journal)).toBe(1);
    expect(existsSync(w1.journal)).toBe(false);
    await waitFor('the adopted purge', () => purged.includes('9,cafe'));
    await zero.close();
  });
});

describe('the served URLs snapshot, version 1', () => {
  const GOLDEN_SERVED = 'ugcfs-served-urls 1\n{"fid":"3,01637037d6","urls":["/old/a%20b.jpg"],"legacy":["/old/a b.jpg"]}\ncrc 4c21a412\n';

  it('has the golden bytes of the layout comment, and refuses a damaged or cut file', () => {
    expect(encodeServedSnapshot([{ fid: '3,01637037d6', urls: ['/old/a%20b.jpg'], legacy: ['/old/a b.jpg'] }])).toBe(GOLDEN_SERVED);
    expect(decodeServedSnapshot(GOLDEN_SERVED)).toEqual([{ fid: '3,01637037d6', urls: ['/old/a%20b.jpg'], legacy: ['/old/a b.jpg'] }]);
    expect(() => decodeServedSnapshot(GOLDEN_SERVED.replace('a%20b', 'a%20c'))).toThrow(/crc/);
    expect(() => decodeServedSnapshot(GOLDEN_SERVED.slice(0, 60))).toThrow();
    expect(() => decodeServedSnapshot(GOLDEN_SERVED.replace('urls 1', 'urls 2'))).toThrow(/version/);
  });

  it('brings back what was served, oldest first, once: the file goes when loaded', async () => {
    const path = join(fresh(), 'served-urls-0');
    const a = new ServedUrls(100);
    a.note('F1', '/F1?w=1');
    a.note('F2', '/F2.jpg');
    a.note('F1', '/old/x.jpg', '/old/x.jpg');
    await saveServed(path, a);
    const b = new ServedUrls(100);
    expect(await loadServed([path], b, log)).toBe(3);
    expect([...b.records()]).toEqual([...a.records()]);
    expect(b.take('F1')!.keys).toEqual(a.take('F1')!.keys);
    expect(existsSync(path)).toBe(false);
    // a damaged snapshot is ignored (and removed), not a reason to stop
    writeFileSync(path, GOLDEN_SERVED.replace('crc 4', 'crc 5'));
    const c = new ServedUrls(100);
    expect(await loadServed([path], c, log)).toBe(0);
    expect(existsSync(path)).toBe(false);
  });
});
