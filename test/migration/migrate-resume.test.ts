// Killing `ugcfs migrate` halfway (SIGKILL) and running it again: the run completes, and
// nothing is stored twice. Counted where it cannot be fooled: every data server's own block
// reports (live records), appended-needle counter and bytes in block files.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { BIN, ROOT, tempDir } from '../helpers/proc.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';
import { scrapeMetrics } from '../helpers/metrics-scrape.ts';
import type { BlockReport, LegacyList } from '../../src/wire/protocol.ts';

const FILES = 120;
let cluster: Cluster;
let work: { dir: string; cleanup: () => void };
let tree: string;

async function dsCounters(): Promise<{ puts: number; bytes: number }> {
  let puts = 0;
  let bytes = 0;
  for (const ds of cluster.dataservers) {
    const m = await scrapeMetrics(ds.url);
    puts += m.value('ugcfs_needle_writes_total', { kind: 'put' });
    bytes += m.value('ugcfs_bytes_stored');
  }
  return { puts, bytes };
}

async function liveRecords(dsUrl: string): Promise<number> {
  const blocks = (await (await fetch(dsUrl + '/blocks', { headers: { 'x-ugcfs-secret': cluster.secret } })).json()) as BlockReport[];
  return blocks.reduce((n, b) => n + b.liveCount, 0);
}

async function mappedCount(prefix = '/bulk'): Promise<number> {
  const res = await fetch(`${cluster.nameserver.url}/legacy?prefix=${prefix}&limit=1000`, { headers: { 'x-ugcfs-secret': cluster.secret } });
  return ((await res.json()) as LegacyList).mappings.length;
}

/** Starts migrate and SIGKILLs it once its progress lines show at least `after` files done. */
function migrateAndKill(after: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'migrate', tree, '--prefix', '/bulk', '--state', join(work.dir, 'state'), '--concurrency', '2'], {
      cwd: ROOT,
      env: { ...process.env, ...cluster.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    let killedAt = -1;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
      for (const m of d.matchAll(/migrate (\d+)\/\d+/g)) {
        if (killedAt < 0 && Number(m[1]) >= after) {
          killedAt = Number(m[1]);
          child.kill('SIGKILL');
        }
      }
    });
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(killedAt);
      else reject(new Error(`migrate ended (${code}) before it could be killed:\n${err}`));
    });
  });
}

/** Distinct noise images, so no two files share bytes. */
const noise = (i: number) => sharp({ create: { width: 48 + (i % 16), height: 48 + Math.floor(i / 16), channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).jpeg({ quality: 90 }).toBuffer();

beforeAll(async () => {
  work = tempDir('ugcfs-migrate-resume-');
  tree = join(work.dir, 'tree');
  for (let i = 0; i < FILES; i++) {
    const dir = join(tree, `d${i % 7}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `img ${i}.jpg`), await noise(i));
  }
  cluster = await startCluster({ dataservers: 2, replicas: 2, racks: [], blockSize: 8 * 1024 * 1024 });
});

afterAll(async () => {
  await cluster?.stop();
  work?.cleanup();
});

describe('ugcfs migrate after SIGKILL', () => {
  it('resumes, completes, and stores every file exactly once', async () => {
    const killedAt = await migrateAndKill(FILES / 3);
    expect(killedAt).toBeLessThan(FILES);
    const mappedAfterKill = await mappedCount();
    expect(mappedAfterKill).toBeGreaterThan(0);
    expect(mappedAfterKill).toBeLessThan(FILES);

    // The worst moment, made exact: killed right after a write is acknowledged, before its
    // mapping is recorded (the test hook SIGKILLs the process itself).
    const crashed = await cluster.cli(['migrate', tree, '--prefix', '/bulk', '--state', join(work.dir, 'state'), '--concurrency', '1'], {
      env: { UGCFS_TEST_MIGRATE_CRASH_AFTER_WRITES: '10' },
    });
    expect(crashed.code).toBeNull();
    const mappedAfterCrash = await mappedCount();
    expect(mappedAfterCrash).toBeGreaterThanOrEqual(mappedAfterKill + 9);

    const second = await cluster.cli(['migrate', tree, '--prefix', '/bulk', '--state', join(work.dir, 'state'), '--json']);
    expect(second.code, second.stderr).toBe(0);
    const r2 = JSON.parse(second.stdout);
    expect(r2.failed).toBe(0);
    expect(r2.copied + r2.unchanged).toBe(FILES);
    expect(r2.unchanged).toBeGreaterThanOrEqual(mappedAfterCrash);
    expect(await mappedCount()).toBe(FILES);

    // Each data server holds every file exactly once: no second live copy from the killed run.
    // (Attempts the cluster itself rolled back, e.g. a replica timing out, are tombstoned and
    // not live, so they do not count.)
    for (const ds of cluster.dataservers) expect(await liveRecords(ds.url)).toBe(FILES);
    const afterSecond = await dsCounters();

    const third = await cluster.cli(['migrate', tree, '--prefix', '/bulk', '--state', join(work.dir, 'state'), '--json']);
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ copied: 0, unchanged: FILES, failed: 0 });
    const afterThird = await dsCounters();
    expect(afterThird.puts).toBe(afterSecond.puts);
    expect(afterThird.bytes).toBe(afterSecond.bytes);
  });
});

describe('ugcfs migrate with a state file from an older ugcfs', () => {
  it('honours its unfinished write (format 1 JSON lines): reused, not stored again', async () => {
    const small = join(work.dir, 'small');
    const state = join(work.dir, 'state-v1');
    mkdirSync(small);
    for (let i = 0; i < 6; i++) writeFileSync(join(small, `s${i}.jpg`), await noise(FILES + i));
    const args = ['migrate', small, '--prefix', '/v1', '--state', state, '--concurrency', '1', '--json'];
    const before = await dsCounters();
    // Killed right after its 3rd write is acknowledged: s2.jpg is stored but not mapped.
    const crashed = await cluster.cli(args, { env: { UGCFS_TEST_MIGRATE_CRASH_AFTER_WRITES: '3' } });
    expect(crashed.code).toBeNull();
    expect(await mappedCount('/v1')).toBe(2);
    const afterCrash = await dsCounters();
    expect(afterCrash.puts - before.puts).toBe(3 * cluster.dataservers.length);

    // Turn that state into what an older ugcfs would have left: JSON lines only, no LevelDB,
    // the intent for s2.jpg and the done entries in the old line format.
    const journal = readdirSync(state).find((f) => f.endsWith('.jsonl'))!;
    const lines = readFileSync(join(state, journal), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { t: string; p?: string; fid?: string });
    const intents = lines.filter((l) => l.t === 'stored');
    const mapped = (await (await fetch(`${cluster.nameserver.url}/legacy?prefix=/v1&limit=10`, { headers: { 'x-ugcfs-secret': cluster.secret } })).json()) as LegacyList;
    const doneOf = (p: string) => mapped.mappings.filter((m) => m.path === p).map((m) => ({ t: 'done', p: m.path, fid: m.fid, sha: m.sha256, size: m.size }));
    expect(intents.filter((l) => doneOf(l.p!).length === 0).map((l) => l.p)).toEqual(['/v1/s2.jpg']);
    // As format 1 wrote it: each write's stored line, then its done line once mapped.
    const v1 = intents.flatMap((l) => [l, ...doneOf(l.p!)]);
    rmSync(join(state, journal.replace(/\.jsonl$/, '.db')), { recursive: true });
    writeFileSync(join(state, journal), v1.map((l) => JSON.stringify(l)).join('\n') + '\n');

    const rerun = await cluster.cli(args);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ total: 6, copied: 4, unchanged: 2, failed: 0 });
    expect(await mappedCount('/v1')).toBe(6);
    // s2.jpg's copy was reused: only s3-s5 were written, on each data server once.
    const afterRerun = await dsCounters();
    expect(afterRerun.puts - afterCrash.puts).toBe(3 * cluster.dataservers.length);
    // Converted: LevelDB beside the journal, which now starts with its version and holds
    // write intents only (s2's, live at open, and this run's three).
    expect(existsSync(join(state, journal.replace(/\.jsonl$/, '.db')))).toBe(true);
    expect(readFileSync(join(state, journal), 'utf8').trim().split('\n').map((l) => JSON.parse(l).t)).toEqual(['version', 'stored', 'stored', 'stored', 'stored']);
  });
});
